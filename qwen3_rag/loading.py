"""Model source, device and dtype choice, and the per-process shared model cache.

Nothing here runs a model. :func:`shared` hands every caller that asks for the same
:class:`ModelKey` (kind, model, revision, device, dtype, quantization) the same loaded object,
loading it once, lazily, under a lock, so any number of adapter objects in a process share one
copy of the weights. :func:`loaded_models` lists what is loaded; :func:`clear_cache` drops it.

Nothing here changes process-wide state on its own: loading a model leaves torch's thread
count alone. :func:`tune_cpu_threads` caps it at the cores this process may use (the
``qwen3-rag`` command and the benchmarks call it; call it yourself in a container or under
``taskset``, where torch's default can exceed the usable cores).

Example:
    >>> from qwen3_rag.loading import resolve_device, resolve_dtype
    >>> import torch
    >>> resolve_dtype(None, torch.device("cpu"))
    torch.float32
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch

from qwen3_rag._extras import require
from qwen3_rag.errors import ModelLoadError
from qwen3_rag.options import QUANTIZATIONS, DeviceLike, DTypeLike, check_model

__all__ = [
    "DTypeLike",
    "DeviceLike",
    "ModelKey",
    "ModelLoadError",
    "ModelSource",
    "cached",
    "check_quantize",
    "clear_cache",
    "cpu_threads",
    "fast_int8_cpu",
    "load_config",
    "load_fast_tokenizer",
    "load_pretrained",
    "load_tokenizer",
    "loaded_models",
    "quantize_int8",
    "resolve_device",
    "resolve_dtype",
    "shared",
    "token_id",
    "tune_cpu_threads",
]

logger = logging.getLogger(__name__)

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a Hugging Face hub id or a local folder.

    Attributes:
        model: Hub id (``"Qwen/Qwen3-Embedding-0.6B"``) or path of a local folder.
        revision: Hub branch, tag or commit; ignored for local folders.
        cache_dir: Hub cache folder; ``None`` uses the Hugging Face default.
        local_files_only: Never touch the network; use only the local cache or folder.
    """

    model: str
    revision: str | None = None
    cache_dir: str | None = None
    local_files_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", check_model(self.model))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", os.fspath(self.cache_dir))

    @property
    def is_local(self) -> bool:
        """Whether ``model`` names a local folder (existing, or written as a path)."""
        m = self.model
        if os.path.isdir(os.path.expanduser(m)):
            return True
        return (
            m.startswith(("/", "./", "../", "~", "\\"))
            or m.count("/") > 1
            or "\\" in m
            or os.path.exists(os.path.expanduser(m))
        )

    @property
    def location(self) -> str:
        """The string to hand to ``from_pretrained``."""
        return os.path.expanduser(self.model) if self.is_local else self.model

    def hub_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``from_pretrained`` that locate the files."""
        kwargs: dict[str, Any] = {"local_files_only": self.local_files_only}
        if not self.is_local:
            kwargs["revision"] = self.revision
            kwargs["cache_dir"] = self.cache_dir
        return kwargs

    def check(self) -> None:
        """Fail early, and clearly, on a local folder that is missing or holds only pickles.

        Raises:
            ModelLoadError: If a local path does not exist or is not a folder.
            ValueError: If a local folder has pickle checkpoints but no ``.safetensors``.
        """
        if not self.is_local:
            return
        path = Path(self.location)
        if not path.is_dir():
            raise ModelLoadError(
                f"model={self.model!r}: no such folder. Pass an existing local model folder "
                f"or a Hugging Face hub id such as 'Qwen/Qwen3-Embedding-0.6B'."
            )
        files = [p.name for p in path.iterdir() if p.is_file()]
        has_safetensors = any(f.endswith(".safetensors") for f in files)
        pickles = sorted(f for f in files if f.endswith(_PICKLE_SUFFIXES))
        if pickles and not has_safetensors:
            raise ValueError(
                f"model={self.model!r} holds only pickle checkpoints ({', '.join(pickles)}). "
                f"qwen3-rag loads safetensors only, since unpickling can run arbitrary code: "
                f"convert the folder with `model.save_pretrained(folder)` in a trusted "
                f"environment, or use the official safetensors release."
            )

    def describe_failure(self, what: str, error: BaseException) -> ModelLoadError:
        """Wrap a loading error in a message that names the model and what to try."""
        if self.is_local:
            hint = "Check that the folder holds a complete Qwen3 model saved with save_pretrained."
        elif self.local_files_only:
            hint = (
                "local_files_only=True and it is not in the local cache"
                + (f" (cache_dir={self.cache_dir!r})" if self.cache_dir else "")
                + ": download it once with network access, or point cache_dir at a cache "
                "that has it, or pass a local folder."
            )
        else:
            hint = (
                "The Hugging Face hub may be unreachable or the id wrong. If the model is "
                "already downloaded, pass local_files_only=True (and cache_dir= if it is not in "
                "the default cache), or pass the path of a local folder."
            )
        return ModelLoadError(
            f"Could not load the {what} of model={self.model!r}: {hint} ({error})"
        )


def resolve_device(device: DeviceLike) -> torch.device:
    """Choose the device: the one given, else CUDA, else Apple MPS, else CPU.

    Args:
        device: ``None``/``"auto"`` for the default, or a device string such as ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, ``"mps"``, or a ``torch.device``.

    Returns:
        The device to load the model on.

    Raises:
        ValueError: If the device string is not a device torch knows, or names CUDA/MPS where
            none is available.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if isinstance(device, torch.device):
        resolved = device
    elif isinstance(device, str):
        try:
            resolved = torch.device(device.strip())
        except RuntimeError as exc:
            raise ValueError(
                f"device={device!r} is not a device; use 'cpu', 'cuda', 'cuda:N', 'mps' or None"
            ) from exc
    else:
        raise TypeError(f"device must be a string, a torch.device or None, not {type(device)!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available on this machine")
    if resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device={device!r} but MPS is not available on this machine")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r}: only cpu, cuda and mps are supported")
    return resolved


def resolve_dtype(dtype: DTypeLike, device: torch.device) -> torch.dtype:
    """Choose the compute dtype: the one given, else float32 on CPU/MPS and bfloat16 on CUDA.

    Checkpoints are stored in bfloat16, but CPUs without native bf16 run bf16 matmuls ~80x
    slower than fp32, so the CPU default is float32. float16 overflows to NaN on the 8B
    embedding model; prefer bfloat16 or float32.

    Args:
        dtype: ``None``/``"auto"``, a name (``"float32"``, ``"bf16"``, ``"float16"`` ...) or a
            floating ``torch.dtype``.
        device: The device the model runs on.

    Returns:
        The torch dtype.

    Raises:
        ValueError: If the name or dtype is not one of float32, bfloat16, float16.
    """
    if dtype is None or (isinstance(dtype, str) and dtype.strip().lower() == "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype={dtype!r}: use torch.float32, torch.bfloat16 or torch.float16")
        return dtype
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
        if key in _DTYPES:
            return _DTYPES[key]
        raise ValueError(
            f"dtype={dtype!r} is not a supported dtype; use one of {', '.join(sorted(_DTYPES))}"
        )
    raise TypeError(f"dtype must be a string, a torch.dtype or None, not {type(dtype)!r}")


def load_tokenizer(source: ModelSource) -> Any:
    """Load the model's fast tokenizer (``transformers.AutoTokenizer``), never remote code.

    Raises:
        ModelLoadError: If the tokenizer cannot be found or loaded.
    """
    from transformers import AutoTokenizer

    source.check()
    try:
        return AutoTokenizer.from_pretrained(
            source.location, trust_remote_code=False, use_fast=True, **source.hub_kwargs()
        )
    except (OSError, ValueError) as exc:
        raise source.describe_failure("tokenizer", exc) from exc


def load_fast_tokenizer(source: ModelSource) -> Any:
    """Load a private ``tokenizers.Tokenizer`` for the model, with truncation and padding off.

    The copy is ours alone: nothing else changes its settings, so it is safe to call from
    several threads, and truncation and padding are applied by the recipe code, not by
    whatever the tokenizer files configured.

    Raises:
        ModelLoadError: If the tokenizer cannot be found or loaded.
        ValueError: If the model has no fast (``tokenizers``) tokenizer.
    """
    from tokenizers import Tokenizer

    hf = load_tokenizer(source)
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"model={source.model!r} has no fast tokenizer (tokenizer.json)")
    tok = Tokenizer.from_str(backend.to_str())
    tok.no_truncation()
    tok.no_padding()
    return tok


def token_id(tokenizer: Any, token: str, source: ModelSource) -> int:
    """Return the id of ``token`` in ``tokenizer``, or raise naming the model.

    Raises:
        ValueError: If the vocabulary has no such token (not a Qwen3 tokenizer).
    """
    tid = tokenizer.token_to_id(token)
    if tid is None:
        raise ValueError(
            f"model={source.model!r}: its tokenizer has no {token!r} token; "
            f"is this a Qwen3 model folder?"
        )
    return int(tid)


def load_config(source: ModelSource) -> Any:
    """Load only the model configuration (no weights).

    Raises:
        ModelLoadError: If the configuration cannot be found or loaded.
    """
    from transformers import AutoConfig

    source.check()
    try:
        return AutoConfig.from_pretrained(
            source.location, trust_remote_code=False, **source.hub_kwargs()
        )
    except (OSError, ValueError) as exc:
        raise source.describe_failure("configuration", exc) from exc


def _dtype_kwarg() -> str:
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def load_pretrained(
    auto_class: Any, source: ModelSource, device: torch.device, dtype: torch.dtype
) -> Any:
    """Load weights with ``auto_class.from_pretrained``: safetensors only, no remote code.

    The model is put in eval mode on ``device`` in ``dtype`` with gradients disabled.

    Raises:
        ModelLoadError: If the weights cannot be found or loaded.
        ValueError: If a local folder holds only pickle checkpoints.
    """
    source.check()
    kwargs: dict[str, Any] = {
        _dtype_kwarg(): dtype,
        "use_safetensors": True,
        "trust_remote_code": False,
        "attn_implementation": "sdpa",
        **source.hub_kwargs(),
    }
    try:
        model = auto_class.from_pretrained(source.location, **kwargs)
    except (OSError, ValueError) as exc:
        raise source.describe_failure("weights", exc) from exc
    if device.type == "cpu" and torch.get_num_threads() > cpu_threads():
        logger.info(
            "torch uses %d threads but this process may use %d cores; "
            "qwen3_rag.tune_cpu_threads() caps them (often faster in containers)",
            torch.get_num_threads(),
            cpu_threads(),
        )
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    return model


def check_quantize(quantize: str | None, device: torch.device, dtype: torch.dtype) -> str | None:
    """Validate a ``quantize=`` argument.

    Args:
        quantize: ``None`` (exact, the default) or ``"int8"``.
        device: The device the model runs on (int8 is CPU only).
        dtype: The compute dtype (int8 computes activations in float32).

    Returns:
        The normalised value.

    Raises:
        ValueError: If the value is unknown, or ``"int8"`` is asked for on a GPU or with a
            dtype other than float32.
    """
    if quantize is None:
        return None
    value = quantize.strip().lower() if isinstance(quantize, str) else None
    if value not in QUANTIZATIONS:
        raise ValueError(f"quantize={quantize!r}: use None (exact) or 'int8' (CPU)")
    if device.type != "cpu":
        raise ValueError(
            f"quantize={quantize!r} is for CPU; on {device.type} use dtype='bfloat16' instead"
        )
    if dtype != torch.float32:
        raise ValueError(f"quantize={quantize!r} computes in float32; leave dtype unset")
    return value


def fast_int8_cpu() -> bool:
    """Whether this CPU multiplies int8 matrices faster than float32 ones.

    torch's int8 matmul (which ``quantize="int8"`` runs) is fast only with the CPU's int8
    dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX). Without them, e.g. on an
    AVX2-only CPU, it was measured 30-65x slower than float32 (torch 2.13, torchao 0.17 and
    0.18); int8 then still cuts weight memory by 4x, but not time.

    Example:
        >>> from qwen3_rag.loading import fast_int8_cpu
        >>> isinstance(fast_int8_cpu(), bool)
        True
    """
    checks = ("_is_vnni_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def quantize_int8(model: torch.nn.Module) -> None:
    """Replace ``model``'s linear layers, in place, with dynamic int8 ones (torchao).

    Weights are stored int8 per output channel; activations are quantized per token at run
    time, and the matmul runs in int8. Embeddings and norms stay float32. Uses
    ``torchao.quantization.Int8DynamicActivationInt8WeightConfig``: torchao is PyTorch's
    maintained quantization library, while ``torch.ao.quantization.quantize_dynamic`` is
    deprecated for removal as of torch 2.13.

    Raises:
        ImportError: If torchao is not installed (``pip install "qwen3-rag[int8]"``).
    """
    tq = require("torchao.quantization", "int8", 'quantize="int8"')
    if not fast_int8_cpu():
        logger.warning(
            'quantize="int8": this CPU has no int8 dot-product instructions (VNNI/AMX), so int8 '
            "matmuls run much slower than float32 here; int8 only saves weight memory. Leave "
            "quantize unset for speed."
        )
    tq.quantize_(model, tq.Int8DynamicActivationInt8WeightConfig())


def cpu_threads() -> int:
    """CPU cores this process may actually use (affinity and cgroup quota respected)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def tune_cpu_threads() -> int:
    """Cap torch's intra-op threads at the usable cores, unless the user chose a count.

    This changes process-wide state, so the library never calls it on its own: the
    ``qwen3-rag`` command and the benchmarks do, and you may. torch sizes its pool from the
    machine's cores, which in a container or under ``taskset`` can exceed the cores actually
    available; the extra threads then fight over them. An explicit
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` or an earlier ``torch.set_num_threads`` lower than
    the cap is left alone.

    Returns:
        torch's intra-op thread count afterwards.

    Example:
        >>> from qwen3_rag import tune_cpu_threads
        >>> tune_cpu_threads() >= 1
        True
    """
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return torch.get_num_threads()
    usable = cpu_threads()
    if torch.get_num_threads() > usable:
        torch.set_num_threads(usable)
    return torch.get_num_threads()


T = TypeVar("T")


class ModelKey(NamedTuple):
    """The identity of one loaded model: objects with equal keys share its weights.

    Attributes:
        kind: ``"embedder"`` or ``"reranker"``.
        source: Where the weights come from (model, revision, cache folder, offline flag).
        device: The device it runs on.
        dtype: Its compute dtype.
        quantize: ``None`` or ``"int8"``.
        engine: ``"torch"`` or ``"onnx"``.
    """

    kind: str
    source: ModelSource
    device: torch.device
    dtype: torch.dtype
    quantize: str | None
    engine: str = "torch"


_cache: dict[Any, Any] = {}
_cache_lock = threading.Lock()
#: Held while a model loads, so a process loads one model at a time: transformers'
#: ``from_pretrained`` changes process-wide state while it builds a model (torch's default
#: dtype, ``torch.nn.init``, the meta device), and two loads running at once in different
#: threads can corrupt each other (seen as a parameter left on the meta device).
_load_lock = threading.RLock()


def shared(key: Any, load: Callable[[], T]) -> T:
    """Return the process-wide object for ``key``, calling ``load()`` once to create it.

    Concurrent first calls for the same key wait for one load. Loads run one at a time, also
    for different keys (``from_pretrained`` is not thread-safe); cached objects are returned
    without waiting for a load in progress.

    Args:
        key: A hashable identity, usually a :class:`ModelKey`.
        load: Builds the object when it is not cached yet.

    Returns:
        The cached object.
    """
    with _cache_lock:
        if key in _cache:
            return _cache[key]  # type: ignore[no-any-return]
    with _load_lock:
        with _cache_lock:
            if key in _cache:
                return _cache[key]  # type: ignore[no-any-return]
        logger.info("Loading %s", key)
        value = load()
        with _cache_lock:
            _cache[key] = value
        return value


def cached(key: Any) -> Any | None:
    """The object :func:`shared` holds for ``key``, or ``None``; never loads anything."""
    with _cache_lock:
        return _cache.get(key)


def loaded_models() -> list[ModelKey]:
    """The models loaded in this process, in loading order.

    Example:
        >>> from qwen3_rag import loaded_models
        >>> [key.kind for key in loaded_models()]  # doctest: +SKIP
        ['embedder', 'reranker']
    """
    with _cache_lock:
        return [key for key in _cache if isinstance(key, ModelKey)]


def clear_cache(key: ModelKey | None = None) -> None:
    """Drop one shared model, or all of them (memory is freed once no object refers to them).

    Objects that used a dropped model load it again on their next call.

    Args:
        key: The model to drop (from :func:`loaded_models` or an object's ``.key``); ``None``
            drops every model.
    """
    with _cache_lock:
        if key is None:
            _cache.clear()
        else:
            _cache.pop(key, None)
