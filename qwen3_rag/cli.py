"""The ``qwen3-rag`` command: index a folder into an embedded Chroma store, then ask it.

``qwen3-rag index PATH...`` runs :func:`qwen3_rag.indexing.index_paths` (incremental, safe
to interrupt, one run per store folder at a time); ``qwen3-rag query "question"`` runs
:func:`qwen3_rag.store.search` (vector search, then Qwen3-Reranker); ``qwen3-rag eval
DATA_DIR`` runs :func:`qwen3_rag.evaluation.evaluate` (presets, Matryoshka sizes and reranking
measured on a BEIR-format folder); ``qwen3-rag adapt CORPUS... --llm SPEC --out DIR`` runs
:func:`qwen3_rag.adapt.adapt` (synthetic queries, LoRA training, a verified merged model, a
before/after table). No server runs: Chroma is embedded. This module only
parses arguments, calls the library and prints: results on stdout, logs and progress on
stderr, every error as one line naming the flag or environment variable to change.

Each subcommand is one ``cmd_*`` function (parse -> call -> print), registered in
:func:`build_parser` with the shared option groups (:func:`store_options`,
:func:`model_options`, :func:`output_options`).

Example:
    >>> from qwen3_rag.cli import main
    >>> main(["index", "README.md", "--db", "./qwen3_db"])  # doctest: +SKIP
    0
    >>> main(["query", "How do I run the tests?", "--db", "./qwen3_db"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen3_rag.errors import Qwen3RagError
from qwen3_rag.store import CHROMA_URL_ENV, DEFAULT_COLLECTION, DEFAULT_DB

if TYPE_CHECKING:
    from qwen3_rag.indexing import IndexProgress, IndexStats
    from qwen3_rag.store import SearchHit, StoreError

__all__ = ["build_parser", "main"]

logger = logging.getLogger("qwen3_rag.cli")  # also when run as python -m qwen3_rag.cli

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


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _non_negative(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def store_options() -> argparse.ArgumentParser:
    """Parent parser: ``--db`` and ``--collection``."""
    parent = argparse.ArgumentParser(add_help=False)
    store = parent.add_argument_group("store")
    store.add_argument(
        "--db", default=DEFAULT_DB, help=f"folder of the Chroma store (default {DEFAULT_DB})"
    )
    _chroma_url_option(store)
    store.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name (default {DEFAULT_COLLECTION})",
    )
    return parent


def _chroma_url_option(group: Any) -> None:
    group.add_argument(
        "--chroma-url",
        metavar="URL",
        help=f"a Chroma server (chroma run, Docker) to use instead of the store in --db, e.g. "
        f"http://localhost:8000 (default: ${CHROMA_URL_ENV}; '{LOCAL}' forces --db)",
    )


def model_options(*, vector_settings: bool = True) -> argparse.ArgumentParser:
    """Parent parser: the embedding and reranking model options.

    Args:
        vector_settings: Include ``--dimensions`` and ``--instruction`` (one value each).
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
    if not vector_settings:
        return parent
    models.add_argument(
        "--dimensions",
        type=_positive,
        help="Matryoshka embedding size, 32..hidden size (default: full size; fixed at index)",
    )
    models.add_argument(
        "--instruction",
        help="query instruction: a preset name (web_search, question_answering, code_search, "
        "...), a sentence, or none for raw queries (default: the collection's, else "
        "web_search)",
    )
    return parent


def _instruction(value: str | None) -> str | None:
    """``--instruction``: ``none`` (or ``''``) means raw queries, the core's ``""``."""
    return "" if value is not None and value.strip().lower() in ("", "none") else value


def output_options() -> argparse.ArgumentParser:
    """Parent parser: ``-v`` and ``-q``."""
    parent = argparse.ArgumentParser(add_help=False)
    out = parent.add_argument_group("output")
    out.add_argument("-v", "--verbose", action="store_true", help="log details and tracebacks")
    out.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The ``qwen3-rag`` argument parser: one subcommand per ``cmd_*`` function.

    Example:
        >>> args = build_parser().parse_args(["query", "what is it?", "-k", "3"])
        >>> args.k, args.run.__name__
        (3, 'cmd_query')
    """
    common = [store_options(), model_options(), output_options()]
    parser = argparse.ArgumentParser(
        prog="qwen3-rag",
        description="Index documents into an embedded Chroma store with Qwen3-Embedding and "
        "query them with Qwen3-Reranker. No server, no API key.",
        epilog="Example: qwen3-rag index docs README.md && qwen3-rag query 'How do I install it?'",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{index,query,eval,adapt,check-server}"
    )

    index = sub.add_parser(
        "index",
        parents=common,
        help="index text files (incremental; safe to interrupt and re-run)",
        description="Walk PATHs for text files, split them into token-sized chunks, embed them "
        "and upsert them. Unchanged files are skipped, changed files replaced, chunks of "
        "deleted files removed. Interrupting and re-running loses and duplicates nothing; a "
        "second run on the same --db waits for the first.",
    )
    index.set_defaults(run=cmd_index)
    index.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to index")
    index.add_argument(
        "--chunk-size", type=_positive, default=512, help="tokens per chunk (default 512)"
    )
    index.add_argument(
        "--chunk-overlap",
        type=_non_negative,
        default=64,
        help="most tokens shared by neighbouring chunks (default 64)",
    )
    index.add_argument(
        "--batch-size",
        type=_positive,
        default=32,
        help="chunks embedded and written per step (default 32)",
    )
    ray = index.add_argument_group('ray (pip install "qwen3-rag[ray]")')
    ray.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL,
        metavar="ADDRESS",
        help=f"embed on Ray actors, one model each: no ADDRESS (or '{LOCAL}') starts Ray here "
        "with no cluster; 'auto' joins the cluster of `ray start`; or ray://HOST:10001",
    )
    ray.add_argument(
        "--ray-actors",
        type=_positive,
        default=1,
        metavar="N",
        help="Ray actors (model copies) embedding in parallel (default 1)",
    )
    ray.add_argument(
        "--ray-cpus",
        type=float,
        metavar="N",
        help="CPUs per actor (default 1; torch uses that many threads)",
    )
    ray.add_argument(
        "--ray-gpus", type=float, metavar="N", help="GPUs per actor, e.g. 1 (default 0)"
    )

    query = sub.add_parser(
        "query",
        parents=common,
        help="search the index and rerank the candidates",
        description="Vector search for the question's nearest chunks, then score each "
        "candidate with Qwen3-Reranker and print the best.",
    )
    query.set_defaults(run=cmd_query)
    query.add_argument("question", help="the question or search query")
    query.add_argument(
        "-k", "--top-k", dest="k", type=_positive, default=5, help="results to print (default 5)"
    )
    query.add_argument(
        "--fetch-k",
        type=_positive,
        default=30,
        help="vector-search candidates handed to the reranker (default 30)",
    )
    query.add_argument(
        "--no-rerank", action="store_true", help="print the vector-search order, no reranker"
    )
    query.add_argument("--json", action="store_true", help="print the results as JSON")
    _eval_parser(sub)
    _adapt_parser(sub)
    _check_server_parser(sub)
    return parser


def _eval_parser(sub: Any) -> None:
    from qwen3_rag.evaluation import DEFAULT_METRICS

    ev = sub.add_parser(
        "eval",
        parents=[model_options(vector_settings=False), output_options()],
        help="measure retrieval quality on a BEIR-format folder: presets, sizes, reranking",
        description="Embed the corpus once, search it exactly (or a Chroma collection with "
        "--db), optionally rerank, and print one table: configurations as rows, metrics as "
        "columns, the best value per column marked (*), each row tested against the first "
        "(+/-: significantly better/worse). Configurations: every --instruction x every "
        "--dimensions, and with --rerank each once more, reranked.",
        epilog="Example: qwen3-rag eval datasets/scifact --instruction web_search,fact_checking "
        "--dimensions 1024,256 --rerank --fetch-k 100",
    )
    ev.set_defaults(run=cmd_eval)
    ev.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv",
    )
    ev.add_argument("--split", default="test", help="qrels split to evaluate (default test)")
    ev.add_argument(
        "--instruction",
        action="append",
        metavar="INSTRUCTIONS",
        help="query instructions to compare: comma-separated preset names (web_search,"
        "question_answering), none for raw queries, or one sentence per --instruction "
        "(default: web_search; with --db, the collection's)",
    )
    ev.add_argument(
        "--dimensions",
        metavar="D[,D...]",
        help="Matryoshka sizes to compare, comma-separated (default: the full size)",
    )
    ev.add_argument(
        "--rerank", action="store_true", help="add each configuration reranked (Qwen3-Reranker)"
    )
    ev.add_argument(
        "--fetch-k",
        type=_positive,
        help="vector-search candidates handed to the reranker (default: -k)",
    )
    ev.add_argument(
        "-k",
        "--k",
        dest="k",
        type=_positive,
        help="results kept per query (default: the largest metric cutoff, 100)",
    )
    ev.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help=f"comma-separated metrics: nDCG@k, Recall@k, MRR@k, MAP@k, P@k (default "
        f"{','.join(DEFAULT_METRICS)})",
    )
    store = ev.add_argument_group("store")
    store.add_argument(
        "--db", help="evaluate this Chroma store's collection (HNSW) instead of exact search"
    )
    _chroma_url_option(store)
    store.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name, with --db (default {DEFAULT_COLLECTION})",
    )
    store.add_argument(
        "--id-key",
        help="with --db: the metadata key holding each record's corpus id (source: the file "
        "path, as `query` prints it); default: the record ids are the corpus ids",
    )
    out = ev.add_argument_group("results")
    out.add_argument("--runs", metavar="DIR", help="write each configuration's TREC run file here")
    out.add_argument("--cache-dir", help="vector cache folder (default ~/.cache/qwen3-rag/vectors)")
    out.add_argument("--no-cache", action="store_true", help="do not cache vectors on disk")
    out.add_argument(
        "--test",
        choices=["permutation", "t-test"],
        default="permutation",
        help="paired significance test against the first row (default permutation)",
    )
    out.add_argument("--json", action="store_true", help="print the results as JSON")


def _check_server_parser(sub: Any) -> None:
    from qwen3_rag.remote import MAX_SCORE_DIFF, MIN_COSINE, PROBE_MAX_LENGTH

    check = sub.add_parser(
        "check-server",
        parents=[output_options()],
        help="compare a model server with local weights on a fixed probe set",
        description="Embed and rerank a fixed probe set (queries and documents with "
        "instructions, Matryoshka sizes, a long document) with the local weights and through "
        "model servers, and print the largest differences. Exit status 0 when the servers "
        f"agree within the tolerances, {EXIT_DIFFERENT} when they do not, 1 on an error.",
        epilog="Example: qwen3-rag check-server --embed-url http://localhost:8000 "
        "--rerank-url http://localhost:8001",
    )
    check.add_argument(
        "url",
        nargs="?",
        metavar="URL",
        help="one server for both models (default: --embed-url / --rerank-url, else "
        f"${EMBED_URL_ENV} / ${RERANK_URL_ENV})",
    )
    check.add_argument("--embed-url", help="the embedding server (checked when given)")
    check.add_argument("--rerank-url", help="the reranking server (checked when given)")
    check.add_argument(
        "--embed-model",
        help=f"served name and local weights of the embedding model (default: "
        f"${EMBED_MODEL_ENV}, else Qwen/Qwen3-Embedding-0.6B)",
    )
    check.add_argument(
        "--rerank-model",
        help=f"served name and local weights of the reranker (default: ${RERANK_MODEL_ENV}, "
        f"else Qwen/Qwen3-Reranker-0.6B)",
    )
    check.add_argument(
        "--max-length",
        type=_positive,
        default=PROBE_MAX_LENGTH,
        help=f"max_length of both sides; the long probe document is cut at it (default "
        f"{PROBE_MAX_LENGTH})",
    )
    check.add_argument(
        "--min-cosine",
        type=float,
        default=MIN_COSINE,
        help=f"smallest cosine allowed between a local and a served vector (default {MIN_COSINE})",
    )
    check.add_argument(
        "--max-score-diff",
        type=float,
        default=MAX_SCORE_DIFF,
        help=f"largest reranker score difference allowed (default {MAX_SCORE_DIFF})",
    )
    check.add_argument("--device", help="device of the local side (default: cuda, mps, cpu)")
    check.add_argument("--dtype", help="dtype of the local side (default: float32 on CPU)")
    check.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per request (default 60)"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=cmd_check_server)


def _server_url(flag: str | None, env: str, persisted: str | None = None) -> str | None:
    """A model server's URL: the flag, else the variable, else the persisted one; or local."""
    value = flag if flag is not None else os.environ.get(env) or persisted
    if value is None or not value.strip() or value.strip().lower() == LOCAL:
        return None
    return value.strip()


def _chroma_url(args: argparse.Namespace) -> str | None:
    """The Chroma server to use: ``--chroma-url``, else its variable; ``None``: the --db store."""
    return _server_url(getattr(args, "chroma_url", None), CHROMA_URL_ENV)


def _where(args: argparse.Namespace) -> str:
    """The store, as the user named it: the server URL or the --db folder."""
    url = _chroma_url(args)
    return url if url is not None else str(args.db)


def _connect(url: str) -> Any:
    """A client of the Chroma server at ``url``, or one line naming --chroma-url."""
    from qwen3_rag import store

    try:
        return store.connect(url)
    except store.StoreError as exc:
        raise CliError(
            f"{exc} (start it with `chroma run --path DIR --port PORT`, or change --chroma-url "
            f"or {CHROMA_URL_ENV})"
        ) from exc


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
    from qwen3_rag import ModelLoadError
    from qwen3_rag.loading import ModelSource

    try:
        yield
    except ModelLoadError as exc:
        flag, env = (
            ("--embed-model", EMBED_MODEL_ENV)
            if role == "embedding"
            else ("--rerank-model", RERANK_MODEL_ENV)
        )
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


def _store_error(exc: StoreError, args: argparse.Namespace) -> CliError:
    from qwen3_rag import store

    place = _where(args)
    flag = "--chroma-url" if _chroma_url(args) is not None else "--db"
    where = f"collection {args.collection!r} in {place}"
    if isinstance(exc, store.NoCollectionError):
        have = f" (it has: {', '.join(exc.available)})" if exc.available else ""
        return CliError(
            f"no collection {args.collection!r} in {place}{have}: run `qwen3-rag index "
            f"PATH... {flag} {place} --collection {args.collection}` first"
        )
    if isinstance(exc, store.EmptyCollectionError):
        return CliError(f"{where} is empty: index some text files first")
    if isinstance(exc, store.ForeignCollectionError):
        return CliError(f"{where} was not made by qwen3-rag; use another --collection")
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
def _store_errors(args: argparse.Namespace) -> Iterator[None]:
    from qwen3_rag.store import StoreError

    try:
        yield
    except StoreError as exc:
        raise _store_error(exc, args) from exc


# -- index -----------------------------------------------------------------------------------


def cmd_index(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag index``; returns the exit status."""
    from tqdm.auto import tqdm

    from qwen3_rag import store
    from qwen3_rag.indexing import check_chunking, index_paths, resolve_paths
    from qwen3_rag.loading import tune_cpu_threads

    try:
        check_chunking(args.chunk_size, args.chunk_overlap)
    except ValueError as exc:
        raise CliError(str(exc).replace("chunk_", "--chunk-")) from None
    resolve_paths(args.paths)  # a missing path fails before any model loads
    ray_flags = [f for f in ("ray_actors", "ray_cpus", "ray_gpus") if _changed(args, f)]
    if args.ray is None and ray_flags:
        raise CliError(f"--{ray_flags[0].replace('_', '-')} applies only with --ray")
    if args.ray is not None:
        _check_ray()
    tune_cpu_threads()
    db = Path(args.db).expanduser()
    url = _chroma_url(args)
    client = _connect(url) if url is not None else None
    with _store_errors(args):
        stored = None
        if client is not None:
            stored = store.stored_config(client, args.collection)
        elif store.has_store(db):
            stored = store.stored_config(store.open_client(db), args.collection)
        function = store.embedding_function_for(
            stored,
            model=args.embed_model or os.environ.get(EMBED_MODEL_ENV),
            instruction=_instruction(args.instruction),
            dimensions=args.dimensions,
            device=args.device,
            dtype=args.dtype,
            base_url=_server_url(args.embed_url, EMBED_URL_ENV, (stored or {}).get("base_url")),
        )
        with (
            model_errors("embedding", function.embedder.model),
            tqdm(desc="Indexing", unit="chunk", disable=True if args.quiet else None) as bar,
        ):

            def progress(p: IndexProgress) -> None:
                bar.total = p.chunks_total
                bar.update(p.chunks_done - bar.n)

            stats = index_paths(
                args.paths,
                db=db,
                collection=args.collection,
                client=client,
                embedding_function=function,
                chunk_size=args.chunk_size,
                chunk_overlap=args.chunk_overlap,
                batch_size=args.batch_size,
                embed=_ray_step(args, function.embedder) if args.ray is not None else None,
                on_progress=progress,
            )
    sys.stdout.write(_summary(stats, args) + "\n")
    return 0


def _changed(args: argparse.Namespace, name: str) -> bool:
    defaults = {"ray_actors": 1, "ray_cpus": None, "ray_gpus": None}
    return bool(getattr(args, name) != defaults[name])


def _check_ray() -> None:
    """One line naming the extra when Ray is not installed."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise CliError(
            '--ray needs Ray: pip install "qwen3-rag[ray]" (or drop --ray to embed here)'
        ) from None


def _ray_step(args: argparse.Namespace, embedder: Any) -> Any:
    """Start (or join) Ray as ``--ray`` says; the indexer's embed step on its actors."""
    import ray.data

    from qwen3_rag.distributed import init_ray, ray_embed_step

    level = logging.DEBUG if args.verbose else logging.ERROR  # -v shows Ray's own logs
    for name in ("ray", "ray.data"):  # our bar shows progress; Ray's notes are noise here
        logging.getLogger(name).setLevel(level)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        init_ray(args.ray, log_to_driver=bool(args.verbose), logging_level=level)
    except ConnectionError as exc:
        raise CliError(
            f"--ray {args.ray}: no Ray cluster answers there ({_one_line(exc)}); drop ADDRESS "
            "to start Ray here"
        ) from exc
    return ray_embed_step(
        embedder, concurrency=args.ray_actors, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus
    )


def _summary(stats: IndexStats, args: argparse.Namespace) -> str:
    return (
        f"{stats.chunks_embedded} chunks embedded, {stats.chunks_reused} reused, "
        f"{stats.chunks_removed} removed; "
        f"{stats.files} text files ({stats.files_unchanged} unchanged, {stats.files_changed} new "
        f"or changed), {stats.files_deleted} deleted, {stats.files_binary} binary skipped; "
        f"{_where(args)} now holds {stats.chunks_stored} chunks in {args.collection!r}"
    )


# -- query -----------------------------------------------------------------------------------


def cmd_query(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag query``; returns the exit status."""
    from qwen3_rag import DEFAULT_RERANKER_MODEL, Reranker, store
    from qwen3_rag.loading import tune_cpu_threads

    question = args.question.strip()
    if not question:
        raise CliError("the question is empty")
    db = Path(args.db).expanduser()
    url = _chroma_url(args)
    if url is None and not store.has_store(db):
        raise CliError(f"no index at {args.db}: run `qwen3-rag index PATH... --db {args.db}` first")
    tune_cpu_threads()
    client = _connect(url) if url is not None else None
    with _store_errors(args):
        if client is None:
            client = store.open_client(db)
        stored = store.stored_config(client, args.collection)
        function = store.embedding_function_for(
            stored,
            model=args.embed_model or os.environ.get(EMBED_MODEL_ENV),
            instruction=_instruction(args.instruction),
            dimensions=args.dimensions,
            device=args.device,
            dtype=args.dtype,
            base_url=_server_url(args.embed_url, EMBED_URL_ENV, (stored or {}).get("base_url")),
        )
        with model_errors("embedding", function.embedder.model):
            opened = store.open_for_search(client, args.collection, embedding_function=function)
        reranker = None
        if not args.no_rerank:
            model = args.rerank_model or os.environ.get(RERANK_MODEL_ENV) or DEFAULT_RERANKER_MODEL
            reranker = Reranker(
                model,
                instruction=function.embedder.preset or "web_search",
                device=args.device,
                dtype=args.dtype,
                base_url=_server_url(args.rerank_url, RERANK_URL_ENV),
            )
            with model_errors("reranker", model):
                reranker.load()
        with model_errors("embedding", function.embedder.model):
            hits = store.search(
                opened.collection, question, k=args.k, fetch_k=args.fetch_k, reranker=reranker
            )
    results = [_result(rank, hit) for rank, hit in enumerate(hits, start=1)]
    if args.json:
        sys.stdout.write(json.dumps({"query": question, "results": results}, indent=2) + "\n")
        return 0
    lines = []
    for r in results:
        rerank = "   -  " if r["rerank_score"] is None else f"{r['rerank_score']:.4f}"
        snippet = " ".join(str(r["text"]).split())
        if len(snippet) > 240:
            snippet = snippet[:239] + "…"
        lines.append(
            f"{r['rank']}. rerank {rerank}  vector {r['vector_score']:.4f}  "
            f"{r['source']}:{r['start_line']}  (chunk {r['chunk']})\n   {snippet}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _display_path(source: str) -> str:
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source


def _result(rank: int, hit: SearchHit) -> dict[str, Any]:
    return {
        "rank": rank,
        "id": hit.id,
        "source": _display_path(hit.source),
        "chunk": hit.metadata.get("chunk"),
        "start_line": hit.metadata.get("start_line"),
        "rerank_score": hit.rerank_score,
        "vector_score": hit.vector_score,
        "text": hit.text,
    }


# -- entry point -----------------------------------------------------------------------------


# -- eval ------------------------------------------------------------------------------------


def _eval_instructions(values: list[str] | None) -> list[str | None]:
    """``--instruction`` values: preset lists split at commas, sentences kept whole."""
    from qwen3_rag.instructions import PRESETS

    if not values:
        return [None]  # the embedder's (or the collection's) own
    out: list[str | None] = []
    for value in values:
        pieces = [p.strip() for p in value.split(",")]
        if all(p in PRESETS or p.lower() == "none" for p in pieces):
            out.extend("" if p.lower() == "none" else p for p in pieces)
        else:
            out.append(value)
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag eval``; returns the exit status."""
    from qwen3_rag import (
        DEFAULT_EMBEDDING_MODEL,
        DEFAULT_RERANKER_MODEL,
        Embedder,
        Reranker,
        evaluation,
        store,
    )
    from qwen3_rag.loading import tune_cpu_threads

    logging.getLogger(evaluation.__name__).setLevel(logger.getEffectiveLevel())
    try:
        metrics = [evaluation.parse_metric(m).name for m in args.metrics.split(",") if m.strip()]
    except ValueError as exc:
        raise CliError(f"--metrics: {exc}") from None
    if not metrics:
        raise CliError("--metrics is empty")
    k = args.k or max(evaluation.parse_metric(m).k for m in metrics)
    if args.rerank and args.fetch_k is not None and args.fetch_k < k:
        raise CliError(
            f"--fetch-k ({args.fetch_k}) must be at least -k ({k}): the reranker must see the "
            f"results it keeps"
        )
    if args.fetch_k is not None and not args.rerank:
        logger.warning("--fetch-k is used only with --rerank")
    dimensions: list[int | None] = [None]
    if args.dimensions:
        try:
            dimensions = [int(d) for d in args.dimensions.split(",") if d.strip()]
        except ValueError:
            raise CliError(
                f"--dimensions {args.dimensions!r}: expected integers like 1024,256"
            ) from None
    url = _chroma_url(args)
    if args.db and url is not None:
        raise CliError("pass either --db or --chroma-url (or QWEN3_RAG_CHROMA_URL), not both")
    in_store = bool(args.db) or url is not None
    if args.id_key and not in_store:
        raise CliError("--id-key applies only with --db or --chroma-url")
    if in_store and args.dimensions:
        raise CliError(
            "--dimensions cannot be used with --db or --chroma-url: the collection's size is fixed"
        )
    data = evaluation.load_beir(args.data_dir, split=args.split)
    logger.info(
        "%s, split %s: %d queries with relevant documents, %d documents",
        args.data_dir,
        args.split,
        len(data.queries),
        len(data.corpus),
    )
    model = args.embed_model or os.environ.get(EMBED_MODEL_ENV)
    collection = None
    revision = None
    served: dict[str, Any] = {}
    if in_store:
        if url is not None:
            client = _connect(url)
        else:
            db = Path(args.db).expanduser()
            if not store.has_store(db):
                raise CliError(
                    f"--db {args.db}: no Chroma store there (run `qwen3-rag index` first)"
                )
            client = store.open_client(db)
        with _store_errors(args):
            collection = store.find_collection(client, args.collection)
            if collection is None:
                names = sorted(c.name for c in client.list_collections())
                have = f" (it has: {', '.join(names)})" if names else ""
                raise CliError(f"--collection {args.collection!r}: not in {_where(args)}{have}")
            persisted = store.collection_config(collection)
        model = model or persisted.get("model")
        revision = persisted.get("revision")
        served = {key: persisted.get(key) for key in ("base_url", "api_key_env")}
    tune_cpu_threads()
    embedder = Embedder(
        model or DEFAULT_EMBEDDING_MODEL,
        revision=revision,
        device=args.device,
        dtype=args.dtype,
        base_url=_server_url(args.embed_url, EMBED_URL_ENV, served.get("base_url")),
        api_key_env=served.get("api_key_env"),
    )
    reranker = None
    if args.rerank:
        reranker = Reranker(
            args.rerank_model or os.environ.get(RERANK_MODEL_ENV) or DEFAULT_RERANKER_MODEL,
            device=args.device,
            dtype=args.dtype,
            base_url=_server_url(args.rerank_url, RERANK_URL_ENV),
        )
    instructions = _eval_instructions(args.instruction)
    vector_rows = [
        evaluation.Configuration(instruction=i, dimensions=d)
        for i in instructions
        for d in dimensions
    ]
    reranked = [
        evaluation.Configuration(
            instruction=c.instruction, dimensions=c.dimensions, rerank=True, fetch_k=args.fetch_k
        )
        for c in vector_rows
        if args.rerank
    ]
    cache: Any = False if args.no_cache else args.cache_dir
    with model_errors("embedding", embedder.model):
        report = evaluation.evaluate(
            data,
            vector_rows + reranked,
            embedder=embedder,
            reranker=reranker,
            metrics=metrics,
            k=k,
            collection=collection,
            id_key=args.id_key,
            cache=cache,
            runs_dir=args.runs,
            test=args.test,
            show_progress=None if not args.quiet else False,
        )
    if args.runs:
        logger.info("run files written to %s", args.runs)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.table() + "\n")
    return 0


# -- adapt -----------------------------------------------------------------------------------


def _fraction(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 <= x < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {x}")
    return x


def _pair(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, Any]]:
    def parse(value: str) -> tuple[Any, Any]:
        parts = value.split(",")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {value!r}")
        try:
            return kind(parts[0]), kind(parts[1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected two numbers, got {value!r}") from None

    return parse


def _adapt_parser(sub: Any) -> None:
    from qwen3_rag.adapt.pipeline import STAGES

    ad = sub.add_parser(
        "adapt",
        parents=[output_options()],
        help="adapt Qwen3-Embedding to your documents (synthetic queries, LoRA, merge, eval)",
        description="Chunk the documents like `index`, have an LLM write a query per chunk, "
        "filter the pairs, mine hard negatives, train a LoRA adapter, merge the epoch "
        "checkpoints (slerp) into a verified model folder OUT/model, and compare it with the "
        "base model on held-out chunks. Interrupted? Run the same command again: finished "
        "stages are skipped, synthesis and training resume.",
        epilog="Example: qwen3-rag adapt docs/ --llm ollama:qwen3:4b --out adapted",
    )
    ad.set_defaults(run=cmd_adapt)
    ad.add_argument("paths", nargs="+", metavar="CORPUS", help="files or folders of text")
    ad.add_argument(
        "--llm",
        help="the LLM that writes the queries: a local chat-model folder (transformers), or "
        "a LangChain init_chat_model spec such as ollama:qwen3:4b or openai:gpt-4o-mini "
        '(pip install "qwen3-rag[langchain]" and the provider package); needed to synthesize',
    )
    ad.add_argument("--out", required=True, help="output folder (resumed when it holds a run)")
    ad.add_argument(
        "--stage",
        choices=STAGES,
        help="run one stage again: synthesize retries the passages that failed, train "
        "starts over, the others recompute",
    )
    ad.add_argument(
        "--overwrite", action="store_true", help="delete a previous run's outputs in --out first"
    )
    models = ad.add_argument_group("models")
    models.add_argument(
        "--embed-model",
        help=f"base Qwen3-Embedding hub id or folder (default: ${EMBED_MODEL_ENV}, else "
        "Qwen/Qwen3-Embedding-0.6B)",
    )
    models.add_argument(
        "--rerank-model",
        help="Qwen3-Reranker hub id or folder: checks mined negatives (and enables "
        "--rerank-band, --train-reranker); default none",
    )
    models.add_argument(
        "--instruction",
        help="query instruction trained and evaluated with: a preset name, a sentence, or "
        "none for raw queries (default web_search); use the same one with the adapted model",
    )
    models.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda, mps, cpu)")
    models.add_argument(
        "--dtype", help="float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on CUDA)"
    )
    data = ad.add_argument_group("data")
    data.add_argument("--chunk-size", type=_positive, default=512, help="tokens per chunk (512)")
    data.add_argument(
        "--chunk-overlap", type=_non_negative, default=64, help="tokens shared by chunks (64)"
    )
    data.add_argument(
        "--languages", default="English", help="query languages, comma-separated (English)"
    )
    data.add_argument(
        "--query-words",
        type=_pair(int),
        default=(4, 20),
        metavar="MIN,MAX",
        help="query length in words (4,20)",
    )
    data.add_argument(
        "--workers",
        type=_positive,
        help="LLM calls in flight (default 8 for a chat-model spec, 1 for a local folder)",
    )
    data.add_argument(
        "--retries", type=_non_negative, default=2, help="attempts after a bad reply (2)"
    )
    data.add_argument(
        "--threshold",
        default="0.7",
        help="keep pairs whose base-model cosine similarity reaches this (0.7, the report's "
        "value for the real models); 'none' keeps all",
    )
    data.add_argument(
        "--rerank-band",
        type=_pair(float),
        metavar="LOW,HIGH",
        help="keep pairs whose reranker P(yes) lies within (needs a reranker)",
    )
    data.add_argument("--test-fraction", type=_fraction, default=0.2, help="held out (0.2)")
    data.add_argument("--dev-fraction", type=_fraction, default=0.1, help="dev loss (0.1)")
    data.add_argument(
        "--negatives", type=_non_negative, default=3, help="hard negatives per query (3)"
    )
    data.add_argument(
        "--mine-margin",
        type=float,
        default=0.05,
        help="skip negatives scoring within this of the positive (0.05)",
    )
    train = ad.add_argument_group("training")
    train.add_argument(
        "--epochs", type=_positive, default=2, help="epochs, one checkpoint each (2)"
    )
    train.add_argument("--batch-size", type=_positive, default=16, help="queries per step (16)")
    train.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (1e-4)")
    train.add_argument("--lora-r", type=_positive, default=16, help="LoRA rank (16)")
    train.add_argument("--lora-alpha", type=_positive, default=32, help="LoRA alpha (32)")
    train.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature (0.05)")
    train.add_argument(
        "--max-length", type=_positive, default=512, help="most tokens per text in training (512)"
    )
    train.add_argument(
        "--gradient-checkpointing", action="store_true", help="less memory, ~30%% more compute"
    )
    train.add_argument(
        "--train-reranker", action="store_true", help="also fine-tune the reranker (yes/no SFT)"
    )
    train.add_argument(
        "--merge",
        choices=("all", "last"),
        default="all",
        help="merge every epoch checkpoint (slerp, default) or only the last",
    )
    train.add_argument("--seed", type=_non_negative, default=0, help="random seed (0)")
    ad.add_argument("--json", action="store_true", help="print the summary as JSON")


def _llm(spec: str, args: argparse.Namespace) -> Any:
    """``--llm``: a local chat-model folder, else a LangChain ``init_chat_model`` spec."""
    if Path(spec).expanduser().is_dir():
        from qwen3_rag.adapt.llm import TransformersChatLLM

        return TransformersChatLLM(
            str(Path(spec).expanduser()), device=args.device, dtype=args.dtype
        )
    # The adapter package registers its spec reader as an entry point: the core imports none.
    readers = list(entry_points(group=LLM_SPEC_ENTRY_POINTS))
    try:
        if not readers:
            raise ImportError("no chat-model spec reader is installed")
        llm_from_spec = readers[0].load()
    except ImportError as exc:
        raise CliError(
            f"--llm {spec}: a chat-model spec needs LangChain: pip install "
            f'"qwen3-rag[langchain]" ({exc})'
        ) from exc
    try:
        return llm_from_spec(spec)
    except ImportError as exc:
        raise CliError(f"--llm {spec}: {_one_line(exc)}") from exc
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CliError(
            f"--llm {spec}: not a folder, and LangChain cannot use it as a chat-model spec "
            f"(provider:model, e.g. ollama:qwen3:4b): {first}"
        ) from exc


def cmd_adapt(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag adapt``; returns the exit status."""
    from qwen3_rag.adapt import AdaptConfig, TrainConfig, adapt
    from qwen3_rag.embedder import DEFAULT_EMBEDDING_MODEL
    from qwen3_rag.loading import tune_cpu_threads
    from qwen3_rag.reranker import DEFAULT_RERANKER_MODEL

    tune_cpu_threads()
    threshold = None if args.threshold.strip().lower() == "none" else float(args.threshold)
    needs_reranker = args.rerank_band is not None or args.train_reranker
    reranker = args.rerank_model or (
        (os.environ.get(RERANK_MODEL_ENV) or DEFAULT_RERANKER_MODEL) if needs_reranker else None
    )
    local = args.llm is not None and Path(args.llm).expanduser().is_dir()
    config = AdaptConfig(
        base_model=args.embed_model or os.environ.get(EMBED_MODEL_ENV) or DEFAULT_EMBEDDING_MODEL,
        reranker_model=reranker,
        instruction=_instruction(args.instruction),
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        languages=tuple(x.strip() for x in args.languages.split(",") if x.strip()),
        query_lengths=args.query_words,
        retries=args.retries,
        workers=args.workers or (1 if local else 8),
        threshold=threshold,
        rerank_band=args.rerank_band,
        test_fraction=args.test_fraction,
        dev_fraction=args.dev_fraction,
        mine_margin=args.mine_margin,
        train=TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            lora_r=args.lora_r,
            lora_alpha=args.lora_alpha,
            temperature=args.temperature,
            negatives=args.negatives,
            max_length=args.max_length,
            gradient_checkpointing=args.gradient_checkpointing,
            seed=args.seed,
        ),
        train_reranker=args.train_reranker,
        merge=args.merge,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        show_progress=None if not args.quiet else False,
    )
    llm = _llm(args.llm, args) if args.llm else None
    summary = adapt(
        args.paths, llm=llm, out=args.out, config=config, stage=args.stage, overwrite=args.overwrite
    )
    if args.json:
        sys.stdout.write(json.dumps(summary.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(summary.table() + "\n")
    return 0


# -- check-server ----------------------------------------------------------------------------


def cmd_check_server(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag check-server``; returns the exit status."""
    from qwen3_rag import DEFAULT_EMBEDDING_MODEL, DEFAULT_RERANKER_MODEL
    from qwen3_rag.remote import check_server

    embed_url = args.embed_url or args.url
    rerank_url = args.rerank_url or args.url
    if embed_url is None and rerank_url is None:
        embed_url = _server_url(None, EMBED_URL_ENV)
        rerank_url = _server_url(None, RERANK_URL_ENV)
    if embed_url is None and rerank_url is None:
        raise CliError(
            f"no server to check: pass URL, --embed-url or --rerank-url (or set "
            f"{EMBED_URL_ENV} / {RERANK_URL_ENV})"
        )
    report = check_server(
        embed_url=embed_url,
        rerank_url=rerank_url,
        embedding_model=args.embed_model
        or os.environ.get(EMBED_MODEL_ENV)
        or DEFAULT_EMBEDDING_MODEL,
        reranker_model=args.rerank_model
        or os.environ.get(RERANK_MODEL_ENV)
        or DEFAULT_RERANKER_MODEL,
        max_length=args.max_length,
        min_cosine=args.min_cosine,
        max_score_diff=args.max_score_diff,
        device=args.device,
        dtype=args.dtype,
        timeout=args.timeout,
    )
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.table() + "\n")
    return 0 if report.ok else EXIT_DIFFERENT


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


def _setup_logging(verbose: bool, quiet: bool) -> None:
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qwen3-rag`` command; returns the exit status.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 1 on an error (printed as one line), 130 when interrupted;
        ``check-server`` returns 3 when the server differs from the local weights.

    Example:
        >>> main(["query", "How do I install it?", "--json"])  # doctest: +SKIP
        0
    """
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        logger.error("interrupted: what was written is kept; run the same command again to finish")
        return 130
    except CliError as exc:
        logger.error("error: %s", exc)
        return 1
    except Exception as exc:
        logger.debug("traceback", exc_info=True)
        known = (ValueError, TypeError, OSError)
        prefix = "" if isinstance(exc, known) else f"{type(exc).__name__}: "
        logger.error("error: %s%s", prefix, _one_line(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
