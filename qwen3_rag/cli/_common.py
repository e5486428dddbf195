"""What every ``qwen3-rag`` subcommand shares: options, settings, errors and logging.

The option groups (:func:`store_options`, :func:`model_options`, :func:`output_options`) and
the argparse types are declared once here; :func:`server_url` is the one rule for a setting
that may come from a flag, an environment variable or a collection's stored settings;
:func:`model_errors` and :func:`store_errors` turn the library's errors into one line naming
the flag or variable that fixes them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from qwen3_rag.errors import Qwen3RagError
from qwen3_rag.options import check_positive_int
from qwen3_rag.store import CHROMA_URL_ENV, DEFAULT_COLLECTION, DEFAULT_DB

if TYPE_CHECKING:
    from qwen3_rag.store import StoreError

logger = logging.getLogger("qwen3_rag.cli")

EMBED_MODEL_ENV = "QWEN3_RAG_EMBED_MODEL"
#: Entry-point group of ``--llm`` spec readers (``langchain_qwen3.llm.llm_from_spec``).
LLM_SPEC_ENTRY_POINTS = "qwen3_rag.llm_spec"
RERANK_MODEL_ENV = "QWEN3_RAG_RERANK_MODEL"
EMBED_URL_ENV = "QWEN3_RAG_EMBED_URL"  # = qwen3_rag.remote.EMBED_URL_ENV
RERANK_URL_ENV = "QWEN3_RAG_RERANK_URL"  # = qwen3_rag.remote.RERANK_URL_ENV
#: The value of --embed-url / --rerank-url (or their variables) that means local weights.
LOCAL = "local"
#: Exit status of check-server when the server differs from the local reference.
EXIT_DIFFERENT = 3


class CliError(Qwen3RagError):
    """An error the user can fix; printed as one line, exit status 1."""


# -- arguments -------------------------------------------------------------------------------


def _count(value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    try:
        return check_positive_int(number, "the value", minimum)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {number}") from None


def positive(value: str) -> int:
    """Argparse type: a whole number >= 1."""
    return _count(value, 1)


def non_negative(value: str) -> int:
    """Argparse type: a whole number >= 0."""
    return _count(value, 0)


def store_options() -> argparse.ArgumentParser:
    """Parent parser: ``--db`` and ``--collection``."""
    parent = argparse.ArgumentParser(add_help=False)
    store = parent.add_argument_group("store")
    store.add_argument(
        "--db", default=DEFAULT_DB, help=f"folder of the Chroma store (default {DEFAULT_DB})"
    )
    chroma_url_option(store)
    store.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name (default {DEFAULT_COLLECTION})",
    )
    return parent


def chroma_url_option(group: Any) -> None:
    group.add_argument(
        "--chroma-url",
        metavar="URL",
        help=f"a Chroma server (chroma run, Docker) to use instead of the store in --db, e.g. "
        f"http://localhost:8000 (default: ${CHROMA_URL_ENV}; '{LOCAL}' forces --db)",
    )


def model_options(
    *, vector_settings: bool = True, several_precisions: bool = False
) -> argparse.ArgumentParser:
    """Parent parser: the embedding and reranking model options.

    Args:
        vector_settings: Include ``--dimensions`` and ``--instruction`` (one value each).
        several_precisions: ``--precision`` takes a comma-separated list (``eval``).
    """
    from qwen3_rag import DEFAULT_EMBEDDING_MODEL, DEFAULT_RERANKER_MODEL

    parent = argparse.ArgumentParser(add_help=False)
    models = parent.add_argument_group("models")
    models.add_argument(
        "--embed-model",
        metavar="PATH",
        help=f"Qwen3-Embedding hub id or local folder (default: ${EMBED_MODEL_ENV}, else the "
        f"model the collection was indexed with, else {DEFAULT_EMBEDDING_MODEL})",
    )
    models.add_argument(
        "--rerank-model",
        metavar="PATH",
        help=f"Qwen3-Reranker hub id or local folder (default: ${RERANK_MODEL_ENV}, else "
        f"{DEFAULT_RERANKER_MODEL}); used by query",
    )
    models.add_argument(
        "--embed-url",
        metavar="URL",
        help=f"model server (vLLM, TEI, Infinity) embedding with --embed-model over "
        f"/v1/embeddings, e.g. http://localhost:8000 (default: ${EMBED_URL_ENV}, else the "
        f"server the collection was indexed through, else local weights; '{LOCAL}' forces "
        f"local weights). API key: $QWEN3_RAG_EMBED_API_KEY",
    )
    models.add_argument(
        "--rerank-url",
        metavar="URL",
        help=f"model server (vLLM) reranking with --rerank-model over /rerank (default: "
        f"${RERANK_URL_ENV}, else local weights). API key: $QWEN3_RAG_RERANK_API_KEY",
    )
    models.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda, mps, cpu)")
    models.add_argument(
        "--dtype", help="float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on CUDA)"
    )
    precision_option(models, several=several_precisions)
    if not vector_settings:
        return parent
    models.add_argument(
        "--dimensions",
        type=positive,
        help="Matryoshka embedding size, 32..hidden size (default: full size; fixed at index)",
    )
    models.add_argument(
        "--instruction",
        help="query instruction: a preset name (web_search, question_answering, code_search, "
        "...), a sentence, or none for raw queries (default: the collection's, else "
        "web_search)",
    )
    return parent


def precision_option(group: Any, *, several: bool = False) -> None:
    """``--precision``: a named CPU path of :data:`qwen3_rag.cpu.CPU_PATHS` (several: a list)."""
    from qwen3_rag.cpu import CPU_PATHS

    names = ", ".join(CPU_PATHS)
    group.add_argument(
        "--precision",
        metavar="PATHS" if several else "PATH",
        help=(
            f"compute path{'s, comma-separated to compare' if several else ''}: {names}. "
            "exact: float32 PyTorch on CPU; fast: chosen by this CPU's instructions "
            "(qwen3-rag doctor shows what and why); bfloat16 / int8: PyTorch; onnx / onnx-int8: "
            'ONNX Runtime (pip install "qwen3-rag[onnx]"). Non-exact paths are checked against '
            "float32 once and refused below the fidelity floor (default: exact, or the path the "
            "collection was indexed with)"
        ),
    )


def precision_settings(precision: str | None, dtype: str | None) -> dict[str, Any]:
    """The model-class settings of ``--precision`` (with ``--dtype``), checked.

    Raises:
        CliError: If the path is unknown, or sets the dtype that ``--dtype`` also sets.

    Example:
        >>> precision_settings("onnx-int8", None)
        {'engine': 'onnx', 'quantize': 'int8'}
    """
    from qwen3_rag.cpu import CPU_PATHS

    settings: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
    if precision is None:
        return settings
    if precision not in CPU_PATHS:
        raise CliError(f"--precision {precision!r}: use one of {', '.join(CPU_PATHS)}")
    chosen = CPU_PATHS[precision]
    if dtype is not None and precision != "exact":
        raise CliError(f"--precision {precision} chooses the dtype itself: leave --dtype unset")
    return {**settings, **chosen}


def long_document_options(parser: Any, *, several: bool = False) -> None:
    """``--long-documents`` (a list with ``several``), ``--window-overlap``, ``--max-windows``.

    Defaults and descriptions are :class:`~qwen3_rag.RerankerOptions`'.
    """
    from qwen3_rag.options import RerankerOptions, default, describe

    group = parser.add_argument_group("long documents (the reranker)")
    group.add_argument(
        "--rerank-max-length",
        type=positive,
        default=default(RerankerOptions, "max_length"),
        metavar="TOKENS",
        help="most tokens per query-document pair the reranker reads, template included "
        "(default %(default)s, the official limit; 512 is a common CPU setting, with "
        "--long-documents max so that nothing is left unread)",
    )
    if several:
        group.add_argument(
            "--long-documents",
            default="truncate",
            metavar="MODES",
            help="with --rerank: how the reranker reads candidates longer than its max_length, "
            "comma-separated to compare (truncate: the recipe; max: the best of overlapping "
            "windows), e.g. truncate,max (default truncate)",
        )
    else:
        group.add_argument(
            "--long-documents",
            choices=("truncate", "max"),
            default=default(RerankerOptions, "long_documents"),
            help=describe(RerankerOptions, "long_documents").replace("%", "%%"),
        )
    group.add_argument(
        "--window-overlap",
        type=non_negative,
        default=default(RerankerOptions, "window_overlap"),
        help=describe(RerankerOptions, "window_overlap").replace("%", "%%"),
    )
    group.add_argument(
        "--max-windows",
        type=positive,
        default=default(RerankerOptions, "max_windows"),
        help=describe(RerankerOptions, "max_windows").replace("%", "%%"),
    )


def instruction_arg(value: str | None) -> str | None:
    """``--instruction``: ``none`` (or ``''``) means raw queries, the core's ``""``."""
    return "" if value is not None and value.strip().lower() in ("", "none") else value


def output_options() -> argparse.ArgumentParser:
    """Parent parser: ``-v`` and ``-q``."""
    parent = argparse.ArgumentParser(add_help=False)
    out = parent.add_argument_group("output")
    out.add_argument("-v", "--verbose", action="store_true", help="log details and tracebacks")
    out.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    return parent


def fraction(value: str) -> float:
    """Argparse type: a number in [0, 1)."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 <= x < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {x}")
    return x


def pair(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, Any]]:
    """Argparse type: ``LOW,HIGH``, each read by ``kind``."""

    def parse(value: str) -> tuple[Any, Any]:
        parts = value.split(",")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {value!r}")
        try:
            return kind(parts[0]), kind(parts[1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected two numbers, got {value!r}") from None

    return parse


# -- settings: flag, then environment variable, then the stored setting ---------------------


def server_url(flag: str | None, env: str, persisted: str | None = None) -> str | None:
    """A model server's URL: the flag, else the variable, else the persisted one; or local."""
    value = flag if flag is not None else os.environ.get(env) or persisted
    if value is None or not value.strip() or value.strip().lower() == LOCAL:
        return None
    return value.strip()


def chroma_url(args: argparse.Namespace) -> str | None:
    """The Chroma server to use: ``--chroma-url``, else its variable; ``None``: the --db store."""
    return server_url(getattr(args, "chroma_url", None), CHROMA_URL_ENV)


def where(args: argparse.Namespace) -> str:
    """The store, as the user named it: the server URL or the --db folder."""
    url = chroma_url(args)
    return url if url is not None else str(args.db)


def connect(url: str) -> Any:
    """A client of the Chroma server at ``url``, or one line naming --chroma-url."""
    from qwen3_rag import store

    try:
        return store.connect(url)
    except store.StoreError as exc:
        raise CliError(
            f"{exc} (start it with `chroma run --path DIR --port PORT`, or change --chroma-url "
            f"or {CHROMA_URL_ENV})"
        ) from exc


def model_setting(flag: str | None, env: str, stored: str | None = None) -> str | None:
    """A model: the flag, else the environment variable, else the stored setting (or ``None``)."""
    return flag or os.environ.get(env) or stored


# -- errors in CLI words ---------------------------------------------------------------------


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@contextlib.contextmanager
def model_errors(role: str, model: str) -> Iterator[None]:
    """Turn a model that cannot be loaded into one line naming the flags that fix it.

    The core's :class:`~qwen3_rag.ModelLoadError` speaks to Python callers
    (``local_files_only=True``); at a shell the fix is a flag or an environment variable.

    Args:
        role: ``"embedding"`` or ``"reranker"``.
        model: The hub id or folder being loaded.

    Raises:
        CliError: For a :class:`~qwen3_rag.ModelLoadError` raised inside.
    """
    from qwen3_rag import ModelKindError, ModelLoadError
    from qwen3_rag.loading import ModelSource

    try:
        yield
    except ModelLoadError as exc:
        flag, env = (
            ("--embed-model", EMBED_MODEL_ENV)
            if role == "embedding"
            else ("--rerank-model", RERANK_MODEL_ENV)
        )
        if isinstance(exc, ModelKindError):  # e.g. --embed-model and --rerank-model swapped
            detail = " ".join(str(exc).split())
            raise CliError(f"{detail} (the {role} model is set with {flag} or {env})") from exc
        if ModelSource(model).is_local:
            detail = " ".join(str(exc).split())
            raise CliError(f"{detail} (set with {flag} PATH or {env}=PATH)") from exc
        if _hub_offline():
            raise CliError(
                f"the {role} model {model!r} is not in the local Hugging Face cache and "
                f"HF_HUB_OFFLINE=1 forbids downloading it: pass a model folder with {flag} PATH "
                f"(or {env}=PATH), or unset HF_HUB_OFFLINE to download it"
            ) from exc
        raise CliError(
            f"cannot load the {role} model {model!r}: the Hugging Face hub is unreachable or has "
            f"no such model, and it is not in the local cache; pass a model folder with {flag} "
            f"PATH (or {env}=PATH), or set HF_HUB_OFFLINE=1 to use the cache without the network"
        ) from exc


def store_error(exc: StoreError, args: argparse.Namespace) -> CliError:
    from qwen3_rag import store

    place = where(args)
    flag = "--chroma-url" if chroma_url(args) is not None else "--db"
    named = f"collection {args.collection!r} in {place}"
    if isinstance(exc, store.NoCollectionError):
        have = f" (it has: {', '.join(exc.available)})" if exc.available else ""
        return CliError(
            f"no collection {args.collection!r} in {place}{have}: run `qwen3-rag index "
            f"PATH... {flag} {place} --collection {args.collection}` first"
        )
    if isinstance(exc, store.EmptyCollectionError):
        return CliError(f"{named} is empty: index some text files first")
    if isinstance(exc, store.ForeignCollectionError):
        return CliError(f"{named} was not made by qwen3-rag; use another --collection")
    if isinstance(exc, store.IdentityMismatchError):
        found = exc.stored.changes(exc.now) if exc.stored and exc.now else [str(exc)]
        weights = any(c.startswith("weights") for c in found)
        return CliError(
            f"{named} was indexed by {'other weights' if weights else 'another compute path'} "
            f"than the model at hand ({'; '.join(found)}): its vectors would not match. "
            f"Re-embed it with `qwen3-rag index PATH... --rebuild`, or pass the "
            + (
                "weights it was indexed with (--embed-model, --dtype)"
                if weights
                else "path it was indexed with (--precision, --dtype)"
            )
        )
    if isinstance(exc, store.ConfigMismatchError):
        hint = (
            "drop --dimensions"
            if args.command == "query"
            else "drop the option or environment variable, or index into another --collection "
            "or --db"
        )
        return CliError(f"{exc} ({place}): {hint}")
    return CliError(f"{flag} {place}: {exc}")


@contextlib.contextmanager
def store_errors(args: argparse.Namespace) -> Iterator[None]:
    from qwen3_rag.store import StoreError

    try:
        yield
    except StoreError as exc:
        raise store_error(exc, args) from exc


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# -- logging ---------------------------------------------------------------------------------


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The command's one log handler: every record once, on the current ``sys.stderr``."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(_CliFormatter())


class _CliFormatter(logging.Formatter):
    """Our records as bare messages; other libraries' prefixed with their package name."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        package = record.name.split(".")[0]
        return message if package == "qwen3_rag" else f"{package}: {message}"


#: Our loggers that speak at the default verbosity (notes about files, progress summary).
_CHATTY = ("qwen3_rag.cli", "qwen3_rag.indexing", "qwen3_rag.store", "qwen3_rag.adapt")


def setup_logging(verbose: bool, quiet: bool) -> None:
    """One handler, on the root logger, so that each record is printed exactly once.

    huggingface_hub and transformers install handlers of their own on their package loggers
    (and huggingface_hub also propagates to the root): those are removed, and their records
    reach the one handler here.
    """
    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _CliHandler)]
    root.addHandler(_CliHandler())
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    hub = logging.getLogger("huggingface_hub")
    hub.handlers[:] = [h for h in hub.handlers if isinstance(h, _CliHandler)]
    hub.propagate = True
    package = logging.getLogger("qwen3_rag")
    package.handlers[:] = [h for h in package.handlers if not isinstance(h, _CliHandler)]
    package.propagate = True
    package.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
        )
    for noisy in ("chromadb", "httpx", "transformers", "torch", "torchao"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)
    hub.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:  # our own bar shows indexing progress; transformers' load bars are noise
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
