"""Public option types, defaults and validators: the one source every class declares from.

:class:`EmbedderOptions` and :class:`RerankerOptions` hold every setting of
:class:`~qwen3_rag.Embedder` and :class:`~qwen3_rag.Reranker`: their types, their defaults and a
one-line description each (``dataclasses.fields(EmbedderOptions)[i].metadata["description"]``).
Constructing one validates it, so a bad value fails where it is written, with a ``ValueError``
or ``TypeError`` that names the argument. The LangChain and LlamaIndex classes declare their
fields from these (see :mod:`qwen3_rag.fields`), so every class agrees on every type and
default.

``instruction=None`` means the same thing everywhere: *not given, use the default*. For a
constructor that is the ``"web_search"`` preset; for a per-call argument
(``embed_queries(..., instruction=None)``) it is the object's own instruction. To embed queries
as raw text, with no instruction, pass ``instruction=""``. The reranker's prompt always carries
an instruction, so it refuses ``""``.

Example:
    >>> from qwen3_rag.options import EmbedderOptions, describe
    >>> opts = EmbedderOptions(dimensions=256)
    >>> opts.model, opts.batch_size, opts.max_length
    ('Qwen/Qwen3-Embedding-0.6B', 32, 8192)
    >>> describe(EmbedderOptions, "batch_size")
    'Most texts per forward pass (with base_url: per request to the server).'
    >>> EmbedderOptions(dimensions=8)
    Traceback (most recent call last):
    ...
    ValueError: dimensions must be an integer >= 32, got 8
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch

from qwen3_rag.instructions import DEFAULT_PRESET, InstructionLike, Preset, resolve_instruction

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_MAX_BATCH_TOKENS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "EMBED_API_KEY_ENV",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_RERANKER_MODEL",
    "MIN_DIMENSIONS",
    "QUANTIZATIONS",
    "RERANK_API_KEY_ENV",
    "DEFAULT_WINDOW_OVERLAP",
    "LONG_DOCUMENTS",
    "ENGINES",
    "PRECISIONS",
    "DTypeLike",
    "DeviceLike",
    "EmbedderOptions",
    "Engine",
    "InstructionLike",
    "LongDocuments",
    "ModelOptions",
    "Precision",
    "RerankerOptions",
    "check_model",
    "check_base_url",
    "check_pairs",
    "check_positive_int",
    "check_rerank_instruction",
    "check_text",
    "check_texts",
    "progress_disabled",
    "default",
    "describe",
]

#: What ``device=`` accepts: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, a ``torch.device``,
#: or ``None``/``"auto"`` for CUDA, else MPS, else CPU.
DeviceLike = str | torch.device | None
#: What ``dtype=`` accepts: ``"float32"``, ``"bfloat16"``, ``"float16"`` (and short names), a
#: floating ``torch.dtype``, or ``None``/``"auto"`` for float32 on CPU/MPS and bfloat16 on CUDA.
DTypeLike = str | torch.dtype | None
#: What ``quantize=`` accepts besides ``None`` (case-insensitive).
QUANTIZATIONS: tuple[str, ...] = ("int8",)
#: What ``precision=`` accepts: ``"exact"`` (dtype, quantize and engine as given; float32
#: PyTorch on CPU by default) or ``"fast"`` (chosen by the CPU's instructions:
#: :func:`qwen3_rag.cpu.choose_fast`).
Precision = Literal["exact", "fast"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: What ``engine=`` accepts: ``"torch"`` (PyTorch) or ``"onnx"`` (ONNX Runtime, CPU,
#: ``pip install "qwen3-rag[onnx]"``: :mod:`qwen3_rag.onnx_engine`).
Engine = Literal["torch", "onnx"]
ENGINES: tuple[str, ...] = get_args(Engine)

DEFAULT_EMBEDDING_MODEL = "Qwen/Qwen3-Embedding-0.6B"
DEFAULT_RERANKER_MODEL = "Qwen/Qwen3-Reranker-0.6B"
#: The models' official context for one input (the models were trained to 32k).
DEFAULT_MAX_LENGTH = 8192
#: Most padded tokens in one forward pass: bounds activation memory.
DEFAULT_MAX_BATCH_TOKENS = 16384
#: The smallest Matryoshka size the Qwen3-Embedding models were trained for.
MIN_DIMENSIONS = 32
#: Seconds to wait for a model server's answer to one request.
DEFAULT_TIMEOUT = 60.0
#: Retries of one request to a model server (on 429, 5xx and failed connections).
DEFAULT_MAX_RETRIES = 3
#: Tokens two neighbouring windows of a long document share (``long_documents="max"``).
DEFAULT_WINDOW_OVERLAP = 64
#: What the reranker does with a document longer than its token budget: ``"truncate"`` (the
#: official recipe: cut it, its tail unseen) or ``"max"`` (score overlapping windows of it,
#: keep the best window's score).
LongDocuments = Literal["truncate", "max"]
LONG_DOCUMENTS: tuple[str, ...] = get_args(LongDocuments)
#: The environment variable an embedding server's API key is read from (by default).
EMBED_API_KEY_ENV = "QWEN3_RAG_EMBED_API_KEY"
#: The environment variable a reranking server's API key is read from (by default).
RERANK_API_KEY_ENV = "QWEN3_RAG_RERANK_API_KEY"


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer >= ``minimum``, else raise ``ValueError``.

    Any integral type counts (``int``, ``numpy.int64``), but not ``bool``, floats or strings.

    Example:
        >>> check_positive_int(3, "top_n")
        3
        >>> check_positive_int(True, "top_n")
        Traceback (most recent call last):
        ...
        ValueError: top_n must be an integer >= 1, got True
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def progress_disabled(show_progress: bool | None) -> bool | None:
    """Tqdm's ``disable`` for a ``show_progress`` setting: ``None`` shows a bar on a terminal only.

    Example:
        >>> progress_disabled(True), progress_disabled(False), progress_disabled(None)
        (False, True, None)
    """
    return None if show_progress is None else not show_progress


def check_text(text: Any, name: str = "text") -> str:
    """Return ``text`` if it is a ``str`` (any content, empty included), else raise ``TypeError``.

    Example:
        >>> check_text(None, "query")
        Traceback (most recent call last):
        ...
        TypeError: query must be a str, not NoneType
    """
    if not isinstance(text, str):
        hint = " (decode bytes first)" if isinstance(text, (bytes, bytearray)) else ""
        raise TypeError(f"{name} must be a str, not {type(text).__name__}{hint}")
    return str(text)


def check_base_url(url: Any, name: str = "base_url") -> str:
    """Return a model server's URL without trailing slashes, or raise naming ``name``.

    Example:
        >>> check_base_url("http://localhost:8000/v1/")
        'http://localhost:8000/v1'
        >>> check_base_url("h:80")
        Traceback (most recent call last):
        ...
        ValueError: base_url must be an http(s) URL such as 'http://localhost:8000', got 'h:80'
    """
    if not isinstance(url, str):
        raise TypeError(f"{name} must be a URL string or None, not {type(url).__name__}")
    text = url.strip().rstrip("/")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or " " in rest:
        raise ValueError(
            f"{name} must be an http(s) URL such as 'http://localhost:8000', got {url!r}"
        )
    return text


def check_texts(texts: Any, name: str = "texts") -> list[str]:
    """Return ``texts`` as a list of strings, or raise a clear error.

    Any string content is accepted (empty strings too); surrogate code points are repaired
    where texts meet the tokenizer (:func:`qwen3_rag.batching.well_formed`).

    Args:
        texts: What the caller passed: a sequence (list, tuple, numpy array) or another
            iterable (generator, ``pandas.Series``) of ``str``; results follow its order.
        name: The argument's name, for the error message.

    Raises:
        TypeError: If ``texts`` is a bare string (which would be read as characters), bytes,
            a mapping (keys or values? say which), not iterable, or holds a non-string item
            (the message names its index).

    Example:
        >>> check_texts(("a", "b"))
        ['a', 'b']
        >>> check_texts("ab")
        Traceback (most recent call last):
        ...
        TypeError: texts must be a list of strings, got a single str. Wrap it in a list: [text].
    """
    if isinstance(texts, str):
        raise TypeError(
            f"{name} must be a list of strings, got a single str. Wrap it in a list: [text]."
        )
    if isinstance(texts, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"{name} must be a list of strings, not {type(texts).__name__}: decode it first "
            f"(e.g. [data.decode('utf-8')])"
        )
    if isinstance(texts, Mapping):
        raise TypeError(
            f"{name} must be a list of strings, not a mapping ({type(texts).__name__}): pass "
            f"list({name}.values()) or list({name}.keys())"
        )
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(
                f"{name} must be a list of strings, not {type(texts).__name__}"
            ) from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            hint = " (decode bytes first)" if isinstance(t, (bytes, bytearray)) else ""
            raise TypeError(f"{name}[{i}] must be a str, not {type(t).__name__}{hint}")
    return [str(t) for t in texts]


def check_pairs(pairs: Any, name: str = "pairs") -> list[tuple[str, str]]:
    """Return ``pairs`` as a list of ``(query, document)`` string tuples, or raise a clear error.

    Args:
        pairs: A sequence or iterable (e.g. ``zip(queries, documents)``) of two-item
            sequences (tuples, lists, numpy rows) of ``str``.
        name: The argument's name, for the error message.

    Raises:
        TypeError: If ``pairs`` is a string, bytes, a mapping or not iterable, or an item is
            not a pair of strings (the message names its index).

    Example:
        >>> check_pairs(zip(["q", "q"], ["d1", "d2"]))
        [('q', 'd1'), ('q', 'd2')]
        >>> check_pairs([("q", "d", "x")])
        Traceback (most recent call last):
        ...
        TypeError: pairs[0] must be a (query: str, document: str) pair, got a tuple of 3 items
    """
    if isinstance(pairs, (str, bytes, bytearray, memoryview, Mapping)):
        raise TypeError(
            f"{name} must be a list of (query, document) tuples, not {type(pairs).__name__}"
        )
    try:
        items = list(pairs)
    except TypeError:
        raise TypeError(
            f"{name} must be a list of (query, document) tuples, not {type(pairs).__name__}"
        ) from None
    checked: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if isinstance(item, (str, bytes, Mapping, AbstractSet)) or not isinstance(item, Iterable):
            raise TypeError(
                f"{name}[{i}] must be a (query: str, document: str) pair, not {type(item).__name__}"
            )
        pair = tuple(item)
        if len(pair) != 2:
            raise TypeError(
                f"{name}[{i}] must be a (query: str, document: str) pair, got a "
                f"{type(item).__name__} of {len(pair)} items"
            )
        for part, value in zip(("query", "document"), pair, strict=True):
            if not isinstance(value, str):
                kind = type(value).__name__
                raise TypeError(f"{name}[{i}]: the {part} must be a str, not {kind}")
        checked.append((str(pair[0]), str(pair[1])))
    return checked


def check_model(model: Any) -> str:
    """Return ``model`` (a hub id or a folder path, ``os.PathLike`` accepted) as a string.

    Raises:
        TypeError: If ``model`` is not a non-empty string or path.
    """
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str) or not model.strip():
        raise TypeError(f"model must be a hub id or a local folder path, got {model!r}")
    return model


def _doc(text: str) -> dict[str, str]:
    return {"description": text}


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """Settings every local Qwen3 model takes.

    :class:`EmbedderOptions` and :class:`RerankerOptions` are the concrete sets, with their
    defaults. Each field's ``metadata["description"]`` documents it (see :func:`describe`).
    """

    model: str = field(
        default=DEFAULT_EMBEDDING_MODEL,
        metadata=_doc("Hugging Face hub id or local folder of the model."),
    )
    instruction: InstructionLike = field(
        default=None,
        metadata=_doc(
            "Task instruction: a preset name from qwen3_rag.PRESETS, one-sentence instruction "
            'text or a Preset; None uses the default ("web_search"); "" embeds queries as raw '
            "text (the reranker refuses it: its prompt always carries an instruction)."
        ),
    )
    device: DeviceLike = field(
        default=None,
        metadata=_doc("'cpu', 'cuda', 'cuda:N' or 'mps'; None picks CUDA, else MPS, else CPU."),
    )
    dtype: DTypeLike = field(
        default=None,
        metadata=_doc(
            "'float32', 'bfloat16' or 'float16' (or a torch dtype); None uses float32 on "
            "CPU/MPS and bfloat16 on CUDA."
        ),
    )
    max_length: int = field(
        default=DEFAULT_MAX_LENGTH,
        metadata=_doc(
            "Most tokens per input, template and end token included (official: 8192); longer "
            "inputs are truncated, with one logged warning per call."
        ),
    )
    batch_size: int = field(
        default=32,
        metadata=_doc("Most inputs per forward pass (with base_url: per request to the server)."),
    )
    max_batch_tokens: int | None = field(
        default=DEFAULT_MAX_BATCH_TOKENS,
        metadata=_doc(
            "Most padded tokens per forward pass (bounds memory); inputs are sorted by length "
            "so batches carry little padding. None: no bound."
        ),
    )
    revision: str | None = field(
        default=None, metadata=_doc("Hub revision (branch, tag or commit) to load.")
    )
    cache_dir: str | None = field(default=None, metadata=_doc("Hugging Face hub cache folder."))
    local_files_only: bool = field(
        default=False, metadata=_doc("Never use the network: local folder or cache only.")
    )
    quantize: str | None = field(
        default=None,
        metadata=_doc(
            'None (exact, the default) or "int8": dynamic int8 linear layers on CPU, about 2x '
            'faster, approximate (pip install "qwen3-rag[int8]").'
        ),
    )
    precision: Precision = field(
        default="exact",
        metadata=_doc(
            '"exact" (the default: float32 PyTorch on CPU, or dtype/quantize/engine as given) '
            'or "fast": the fastest path for this CPU\'s instructions, with its fidelity to '
            "float32 checked at load (AVX-512 BF16/AMX: PyTorch bfloat16; otherwise ONNX "
            "Runtime int8 with the onnx extra); it logs what it chose and why."
        ),
    )
    engine: Engine = field(
        default="torch",
        metadata=_doc(
            '"torch" (the default) or "onnx": ONNX Runtime on CPU, exported once and cached '
            '(float32, or int8 with quantize="int8"; pip install "qwen3-rag[onnx]").'
        ),
    )
    show_progress: bool = field(default=False, metadata=_doc("Show a progress bar."))
    base_url: str | None = field(
        default=None,
        metadata=_doc(
            "URL of a model server (vLLM, TEI, Infinity) to run the model on instead of local "
            "weights, e.g. 'http://localhost:8000' (a trailing /v1 is accepted); model is then "
            "the served model name, and device, dtype, quantize and max_batch_tokens do not "
            'apply. None runs the model locally (pip install "qwen3-rag[remote]" for servers).'
        ),
    )
    api_key_env: str | None = field(
        default=None,
        metadata=_doc(
            "Name of the environment variable holding the server's API key (sent as a Bearer "
            f"token; the key itself is never stored); None reads {EMBED_API_KEY_ENV} for "
            f"embeddings and {RERANK_API_KEY_ENV} for reranking."
        ),
    )
    timeout: float = field(
        default=DEFAULT_TIMEOUT,
        metadata=_doc("Seconds to wait for a model server's answer to one request."),
    )
    max_retries: int = field(
        default=DEFAULT_MAX_RETRIES,
        metadata=_doc(
            "Retries of a request that a model server answered with 429 or 5xx, or that could "
            "not connect, with exponential backoff (Retry-After is honoured)."
        ),
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", check_model(self.model))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", os.fspath(self.cache_dir))
        for name in ("revision", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None, not {type(value).__name__}")
        resolve_instruction(self.instruction)  # raises on a typo or a wrong type
        check_positive_int(self.max_length, "max_length", 2)
        check_positive_int(self.batch_size, "batch_size")
        if self.max_batch_tokens is not None:
            check_positive_int(self.max_batch_tokens, "max_batch_tokens")
        if self.quantize is not None:
            value = self.quantize.strip().lower() if isinstance(self.quantize, str) else None
            if value not in QUANTIZATIONS:
                raise ValueError(f"quantize={self.quantize!r}: use None (exact) or 'int8' (CPU)")
            object.__setattr__(self, "quantize", value)
        for name, allowed in (("precision", PRECISIONS), ("engine", ENGINES)):
            value = getattr(self, name)
            if not isinstance(value, str) or value.strip().lower() not in allowed:
                raise ValueError(f"{name}={value!r}: use one of {', '.join(map(repr, allowed))}")
            object.__setattr__(self, name, value.strip().lower())
        if self.precision == "fast" and (
            self.dtype is not None or self.quantize is not None or self.engine != "torch"
        ):
            raise ValueError(
                "precision='fast' chooses dtype, quantize and engine for this CPU: leave them "
                "unset, or use precision='exact' with the ones you want"
            )
        for name in ("local_files_only", "show_progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.base_url is not None:
            object.__setattr__(self, "base_url", check_base_url(self.base_url))
        if self.api_key_env is not None and (
            not isinstance(self.api_key_env, str)
            or not self.api_key_env.strip()
            or any(c.isspace() or c == "=" for c in self.api_key_env)
        ):
            raise ValueError(
                f"api_key_env must name an environment variable (e.g. {EMBED_API_KEY_ENV!r}), "
                f"got {self.api_key_env!r}; pass the variable's name, never the key itself"
            )
        timeout = self.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        object.__setattr__(self, "timeout", float(timeout))
        check_positive_int(self.max_retries, "max_retries", 0)

    @property
    def preset(self) -> Preset | None:
        """The resolved instruction: the default preset for ``None``, ``None`` for ``""``."""
        return resolve_instruction(self.instruction)

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (and validated).

        Example:
            >>> EmbedderOptions().replace(dimensions=64).dimensions
            64
        """
        return dataclasses.replace(self, **changes)

    def non_defaults(self) -> dict[str, Any]:
        """The settings that differ from their defaults (for a short ``repr``).

        Example:
            >>> RerankerOptions(model="m", batch_size=4).non_defaults()
            {'model': 'm', 'batch_size': 4}
        """
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }


@dataclass(frozen=True, kw_only=True)
class EmbedderOptions(ModelOptions):
    """Every setting of :class:`~qwen3_rag.Embedder` (and of the adapters' embedding classes).

    Example:
        >>> EmbedderOptions(instruction="question_answering").preset.name
        'question_answering'
        >>> EmbedderOptions(instruction="").preset is None  # raw queries
        True
    """

    model: str = field(
        default=DEFAULT_EMBEDDING_MODEL,
        metadata=_doc("Hugging Face hub id or local folder of a Qwen3-Embedding model."),
    )
    dimensions: int | None = field(
        default=None,
        metadata=_doc(
            "Matryoshka output size (32 <= dimensions <= hidden size): the first dimensions "
            "values are kept, then L2-normalised; None keeps all."
        ),
    )
    batch_size: int = field(
        default=32,
        metadata=_doc("Most texts per forward pass (with base_url: per request to the server)."),
    )
    query_model: str | None = field(
        default=None,
        metadata=_doc(
            "Hub id or local folder of the model that embeds queries, when it is not model: "
            "a query-side adaptation of model (qwen3-rag adapt --queries-only), so documents "
            "indexed by model stay valid. Documents are always embedded by model; every other "
            "setting is shared. None: model embeds both."
        ),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dimensions is not None:
            check_positive_int(self.dimensions, "dimensions", MIN_DIMENSIONS)
        if self.query_model is not None:
            query_model = check_model(self.query_model)
            object.__setattr__(
                self, "query_model", None if query_model == self.model else query_model
            )


@dataclass(frozen=True, kw_only=True)
class RerankerOptions(ModelOptions):
    """Every setting of :class:`~qwen3_rag.Reranker` (and of the adapters' reranker classes).

    Example:
        >>> RerankerOptions().batch_size
        16
        >>> RerankerOptions(instruction="")
        Traceback (most recent call last):
        ...
        ValueError: instruction='': the Qwen3-Reranker prompt always carries an instruction; ...
    """

    model: str = field(
        default=DEFAULT_RERANKER_MODEL,
        metadata=_doc("Hugging Face hub id or local folder of a Qwen3-Reranker model."),
    )
    batch_size: int = field(
        default=16,
        metadata=_doc(
            "Most query-document pairs per forward pass (with base_url: per request to the server)."
        ),
    )

    long_documents: LongDocuments = field(
        default="truncate",
        metadata=_doc(
            '"truncate" (the official recipe) cuts a document that does not fit max_length, '
            'so its tail is never read; "max" scores it by overlapping windows of its tokens, '
            "each with the full template, and keeps the best window's score and span."
        ),
    )
    window_overlap: int = field(
        default=DEFAULT_WINDOW_OVERLAP,
        metadata=_doc(
            'Tokens two neighbouring windows share (long_documents="max"), so a passage cut '
            "by a window's edge is whole in one of them."
        ),
    )
    max_windows: int | None = field(
        default=None,
        metadata=_doc(
            'Most windows scored per document (long_documents="max"): the first ones, the '
            "rest unread, like max_chunks_per_doc elsewhere; None scores every window."
        ),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rerank_instruction(self.instruction)
        if self.long_documents not in LONG_DOCUMENTS:
            raise ValueError(
                f"long_documents must be one of {', '.join(map(repr, LONG_DOCUMENTS))}, "
                f"got {self.long_documents!r}"
            )
        check_positive_int(self.window_overlap, "window_overlap", 0)
        if self.max_windows is not None:
            check_positive_int(self.max_windows, "max_windows")


def check_rerank_instruction(instruction: InstructionLike) -> Preset:
    """The reranker's instruction as a :class:`Preset`: ``None`` is the default, ``""`` an error.

    Raises:
        ValueError: If ``instruction`` is empty (the reranker prompt needs one) or a typo.
        TypeError: If it is not a string, a ``Preset`` or ``None``.
    """
    preset = resolve_instruction(instruction)
    if preset is None:
        raise ValueError(
            f"instruction={instruction!r}: the Qwen3-Reranker prompt always carries an "
            f"instruction; pass a preset name or instruction text, or None for the default "
            f"({DEFAULT_PRESET!r})"
        )
    return preset


def describe(options: type[ModelOptions], name: str) -> str:
    """The one-line description of option ``name`` of ``options``.

    Raises:
        KeyError: If ``options`` has no such field.
    """
    for f in dataclasses.fields(options):
        if f.name == name:
            return str(f.metadata["description"])
    raise KeyError(f"{options.__name__} has no option {name!r}")


def default(options: type[ModelOptions], name: str) -> Any:
    """The default value of option ``name`` of ``options``.

    Example:
        >>> default(RerankerOptions, "batch_size")
        16

    Raises:
        KeyError: If ``options`` has no such field.
    """
    for f in dataclasses.fields(options):
        if f.name == name:
            return f.default
    raise KeyError(f"{options.__name__} has no option {name!r}")
