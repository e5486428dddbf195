"""The skeleton :class:`~qwen3_rag.Embedder` and :class:`~qwen3_rag.Reranker` share.

Settings (a validated options object, device, dtype, quantization), the shared runtime
(loaded once per process through :func:`qwen3_rag.loading.shared`), the load-time check of the
lean forward, and ``repr``. Each subclass says how to build its runtime and what it computes.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from qwen3_rag import _forward
from qwen3_rag import fidelity as _fidelity
from qwen3_rag._files import save_array
from qwen3_rag.cpu import FastChoice, choose_fast, cpu_features
from qwen3_rag.identity import ModelIdentity, check_kind, weights_id
from qwen3_rag.loading import (
    ModelKey,
    ModelSource,
    cached,
    check_quantize,
    clear_cache,
    fast_int8_cpu,
    load_config,
    load_fast_tokenizer,
    load_pretrained,
    quantize_int8,
    resolve_device,
    resolve_dtype,
    shared,
)
from qwen3_rag.onnx_engine import (
    GRAPH,
    OnnxDecoder,
    check_installed,
    export_decoder,
    folder_bytes,
)
from qwen3_rag.options import ModelOptions
from qwen3_rag.remote import RemoteBackend

logger = logging.getLogger("qwen3_rag")

OptionsT = TypeVar("OptionsT", bound=ModelOptions)
RuntimeT = TypeVar("RuntimeT", bound="Runtime")


@dataclass
class Runtime:
    """What one loaded model needs at inference time; shared by every object using it.

    Attributes:
        tokenizer: A private ``tokenizers.Tokenizer`` (truncation and padding off).
        model: The Qwen3 decoder stack (``Qwen3Model``), in eval mode, gradients off.
        device: Where the model runs.
        lock: Held while the model computes (one forward at a time per model).
        fast: Whether the lean forward of ``qwen3_rag._forward`` applies (it passed
            :func:`~qwen3_rag._forward.supports` and :func:`~qwen3_rag._forward.self_check`).
        weights: The weights part of the identity of what was loaded
            (:func:`qwen3_rag.identity.weights_id`).
        fidelity: The probe beside float32 of a non-exact path (``None`` for the exact one).
    """

    tokenizer: Any
    model: Any
    device: torch.device
    lock: threading.Lock
    fast: bool
    weights: str | None = field(default=None, kw_only=True)
    fidelity: _fidelity.Fidelity | None = field(default=None, kw_only=True)

    def final_hidden(
        self, sequences: Sequence[Sequence[int]], pad_id: int, past: _forward.KV | None = None
    ) -> torch.Tensor:
        """Final-norm hidden state at each sequence's last token, by this runtime's engine.

        PyTorch: :func:`qwen3_rag._forward.final_hidden` (``past``: a shared prefix, lean
        forward only); ONNX: :meth:`qwen3_rag.onnx_engine.OnnxDecoder.final_hidden`.
        """
        if isinstance(self.model, OnnxDecoder):
            if past is not None:
                raise ValueError("the ONNX engine takes no shared prefix")
            return self.model.final_hidden(sequences, pad_id)
        return _forward.final_hidden(
            self.model, sequences, pad_id, self.device, fast=self.fast, past=past
        )


class ModelBase(ABC, Generic[OptionsT, RuntimeT]):
    """Settings, shared runtime, load-time checks and ``repr`` of a local Qwen3 model.

    Args:
        options: The validated settings.

    Raises:
        ValueError: If the device is unavailable or ``quantize`` does not fit the device and
            dtype.
    """

    #: Which kind of model this is, part of the shared-cache key.
    kind: ClassVar[str]
    #: The checkpoint kind this class needs (see :func:`qwen3_rag.identity.check_kind`).
    checkpoint_kind: ClassVar[Literal["embedding", "reranker"]]
    #: The model server this object sends to (``base_url`` set), or ``None`` (local weights).
    remote: RemoteBackend | None = None

    def __init__(self, options: OptionsT) -> None:
        self.options: OptionsT = options
        self.source = ModelSource(
            options.model, options.revision, options.cache_dir, options.local_files_only
        )
        self.device = resolve_device(options.device)
        dtype, quantize = options.dtype, options.quantize
        engine: str = options.engine
        #: What ``precision="fast"`` chose on this machine, and why (``None``: exact).
        self.fast_choice: FastChoice | None = None
        if options.precision == "fast" and options.base_url is None:
            self.fast_choice = choose_fast(self.device.type, torch_int8=fast_int8_cpu())
            dtype, quantize = self.fast_choice.dtype, self.fast_choice.quantize
            engine = self.fast_choice.engine
        if engine == "onnx" and self.device.type != "cpu":
            raise ValueError(f"engine='onnx' runs on CPU; on {self.device.type} use engine='torch'")
        #: ``"torch"`` or ``"onnx"``.
        self.engine: str = engine
        self.dtype = resolve_dtype(dtype, self.device)
        if engine == "onnx" and self.dtype != torch.float32:
            raise ValueError(
                "engine='onnx' computes in float32 or int8 (quantize='int8'); leave dtype unset"
            )
        self.quantize = check_quantize(quantize, self.device, self.dtype)

    @classmethod
    def from_options(cls, options: Any) -> Any:
        """Build the object from an options object (e.g. :class:`~qwen3_rag.EmbedderOptions`)."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(options)})

    def __repr__(self) -> str:
        shown: dict[str, Any] = {"model": self.source.model}
        if self.options.base_url is not None:
            shown["base_url"] = self.options.base_url
        else:
            shown["device"] = str(self.device)
            shown["dtype"] = str(self.dtype).removeprefix("torch.")
        extra = {
            k: v
            for k, v in self.options.non_defaults().items()
            if k not in shown and k not in ("device", "dtype")
        }
        args = ", ".join(f"{k}={v!r}" for k, v in {**shown, **extra}.items())
        return f"{type(self).__name__}({args})"

    @property
    def model(self) -> str:
        """The hub id or folder this object loads."""
        return self.source.model

    @property
    def max_length(self) -> int:
        """Most tokens per input (see the options)."""
        return self.options.max_length

    @property
    def batch_size(self) -> int:
        """Most inputs per forward pass."""
        return self.options.batch_size

    @property
    def max_batch_tokens(self) -> int | None:
        """Most padded tokens per forward pass, or ``None``."""
        return self.options.max_batch_tokens

    @property
    def show_progress(self) -> bool:
        """Whether calls show a progress bar."""
        return self.options.show_progress

    @property
    def key(self) -> ModelKey:
        """The identity of the loaded model this object shares with others."""
        return ModelKey(self.kind, self.source, self.device, self.dtype, self.quantize, self.engine)

    @property
    def precision(self) -> str:
        """What the weights compute in: ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"int8"``."""
        if self.remote is not None:
            return "unknown"  # the server's own
        return self.quantize or str(self.dtype).removeprefix("torch.")

    def identity(self) -> ModelIdentity:
        """Which weights, engine and precision this object computes with.

        Vectors (or scores) from objects with equal identities are the same; the indexer,
        the collections, the evaluation cache and adapt key what they store on it. Computed
        afresh at each call (milliseconds: see :mod:`qwen3_rag.identity`), so weights
        replaced under the same path are seen. Also refuses a checkpoint of the wrong kind.

        Returns:
            The :class:`~qwen3_rag.identity.ModelIdentity`.

        Raises:
            qwen3_rag.ModelKindError: If the checkpoint is of the other kind (an embedding
                model given to the reranker, or the reverse).
            qwen3_rag.ModelLoadError: If the model cannot be found.

        Example:
            >>> from qwen3_rag import Embedder
            >>> print(Embedder("Qwen/Qwen3-Embedding-0.6B").identity())  # doctest: +SKIP
            hub:c54f2e6e80b2d7b7de06f51cec4959f9b3e03418 (torch, float32)
        """
        engine = "server" if self.remote is not None else self.engine
        if self.remote is None:
            self.source.check()
        weights = weights_id(self.source)
        loaded = cached(self.key) if self.remote is None else None
        if loaded is not None and weights is not None and loaded.weights != weights:
            logger.warning(
                "%s: the weights changed since they were loaded in this process (%s -> %s): "
                "loading them again",
                self.source.model,
                loaded.weights,
                weights,
            )
            clear_cache(self.key)
        if weights is None and self.remote is None:
            load_config(self.source)  # brings a hub snapshot into the cache (config only)
            weights = weights_id(self.source)
        if weights is None:  # a served name, or a hub setup without a local cache
            rev = f"@{self.source.revision}" if self.source.revision else ""
            weights = f"{'served' if self.remote is not None else 'hub'}:{self.source.model}{rev}"
        elif self.remote is None:
            check_kind(self.source, self.checkpoint_kind)
        return ModelIdentity(weights, engine, self.precision)

    @property
    def base_url(self) -> str | None:
        """The model server's URL, or ``None`` when the model runs on local weights."""
        return self.options.base_url

    def load(self) -> Any:
        """Load the model now instead of on first use; returns ``self``.

        With ``base_url``, loads only the tokenizer used for client-side truncation.
        """
        if self.remote is not None:
            self.remote.tokenizer()
        else:
            self._runtime()
        return self

    def weight_bytes(self) -> int:
        """Bytes the loaded weights take (loads the model on first use; 0 with a server).

        Example:
            >>> from qwen3_rag import Embedder
            >>> Embedder("Qwen/Qwen3-Embedding-0.6B").weight_bytes() / 2**20  # doctest: +SKIP
            2270.1
        """
        if self.remote is not None:
            return 0
        model = self._runtime().model
        if isinstance(model, OnnxDecoder):
            return model.weight_bytes()
        return int(sum(p.numel() * p.element_size() for p in model.parameters()))

    @property
    def exact(self) -> bool:
        """Whether this object computes the recipe exactly.

        Exact: float32 PyTorch on CPU/MPS, the device's default dtype on CUDA, or a model
        server (its own). Other paths have their fidelity checked at load.
        """
        if self.remote is not None:
            return True  # the server's own precision; its answers are checked elsewhere
        if self.engine != "torch" or self.quantize is not None:
            return False
        return self.dtype == resolve_dtype(None, self.device)

    def fidelity(self) -> _fidelity.Fidelity | None:
        """The probe beside float32 of this non-exact path (loads the model on first use).

        Returns:
            The :class:`~qwen3_rag.fidelity.Fidelity` measured (or re-checked) when the
            model loaded; ``None`` for the exact path and for model servers.
        """
        if self.exact:
            return None
        return self._runtime().fidelity

    def close(self) -> None:
        """Close the connections to the model server, if any (they reopen on the next call)."""
        if self.remote is not None:
            self.remote.close()

    async def aclose(self) -> None:
        """Close this event loop's connections to the model server, if any."""
        if self.remote is not None:
            await self.remote.aclose()

    def _runtime(self) -> RuntimeT:
        return shared(self.key, self._load_identified)

    def _load_identified(self) -> RuntimeT:
        if self.fast_choice is not None:
            faster = self.engine != "torch" or self.precision != "float32"
            logger.log(
                logging.INFO if faster else logging.WARNING,
                "%s: precision='fast' runs %s %s: %s",
                self.source.model,
                self.engine,
                self.precision,
                self.fast_choice.reason,
            )
        if self.engine == "onnx":
            return self._load_engine()
        runtime = self._load_runtime()
        runtime.weights = weights_id(self.source)  # the files are local now, hub ones too
        if not self.exact and self.device.type == "cpu":
            runtime.fidelity = self._torch_fidelity(runtime)
        return runtime

    # -- non-exact paths: the probe beside float32 ---------------------------------------------

    def _reference(self) -> tuple[ModelBase[OptionsT, RuntimeT], RuntimeT]:
        """The exact float32 PyTorch sibling of this object and its (private) runtime."""
        options = self.options.replace(
            precision="exact", engine="torch", dtype="float32", quantize=None, device="cpu"
        )
        sibling = type(self).from_options(options)
        runtime = sibling._load_runtime()
        runtime.weights = weights_id(sibling.source)
        return sibling, runtime

    def _path_identity(self, weights: str | None) -> ModelIdentity:
        return ModelIdentity(weights or f"hub:{self.source.model}", self.engine, self.precision)

    def _probe_against(
        self,
        runtime: RuntimeT,
        identity: ModelIdentity,
        reference: np.ndarray,
        reference_seconds: float,
        details: dict[str, Any],
    ) -> _fidelity.Fidelity:
        """Run the probe on ``runtime`` (timed) and compare it with the float32 outputs."""
        started = time.perf_counter()
        outputs = self._probe(runtime)
        return _fidelity.measure(
            self.kind,
            str(identity),
            reference,
            outputs,
            seconds=time.perf_counter() - started,
            reference_seconds=reference_seconds,
            details=details,
        )

    def _reference_probe(self) -> tuple[np.ndarray, float, RuntimeT]:
        """The float32 sibling's probe outputs, their time, and its runtime (to export)."""
        sibling, runtime = self._reference()
        started = time.perf_counter()
        outputs = sibling._probe(runtime)
        return outputs, time.perf_counter() - started, runtime

    def _torch_fidelity(self, runtime: RuntimeT) -> _fidelity.Fidelity:
        """The stored probe of this PyTorch path, measured on its first load per identity."""
        identity = self._path_identity(runtime.weights)
        folder = _fidelity.artefact_folder(self.kind, identity)
        record, _ = _fidelity.read(folder)
        if record is None:
            logger.info("%s: measuring %s against float32 (once)", self.source.model, identity)
            reference, reference_seconds, reference_rt = self._reference_probe()
            del reference_rt
            details = {"cpu": cpu_features().summary()}
            record = self._probe_against(runtime, identity, reference, reference_seconds, details)
            _fidelity.write(folder, record)
        _fidelity.check(record)
        return record

    def _load_engine(self) -> RuntimeT:
        """The ONNX runtime: its cached artefact, built on first use, probed at each load.

        The probe runs against the float32 outputs stored when the artefact was built, so a
        damaged or replaced artefact is refused like a poor one.
        """
        check_installed()  # before any export work
        weights = weights_id(self.source)
        if weights is None:  # a hub model not downloaded yet: the reference brings it
            self._reference()
            weights = weights_id(self.source)
        identity = self._path_identity(weights)
        folder = _fidelity.artefact_folder(self.kind, identity)
        record, reference = _fidelity.read(folder)
        if record is None or reference is None or not (folder / GRAPH).is_file():
            record = None
            reference, reference_seconds, details = self._build_engine(folder)
        else:
            reference_seconds, details = record.reference_seconds, record.details
        runtime = self._engine_runtime(OnnxDecoder(folder), folder)
        runtime.weights = weights
        measured = self._probe_against(runtime, identity, reference, reference_seconds, details)
        if record is None:
            _fidelity.write(folder, measured, reference)
        elif abs(measured.value - record.value) > 1e-3:
            logger.warning(
                "%s: the engine artefact in %s now measures %s %.5f (built at %.5f)",
                self.source.model,
                folder,
                measured.metric,
                measured.value,
                record.value,
            )
            _fidelity.write(folder, measured)
        _fidelity.check(measured)
        runtime.fidelity = measured
        return runtime

    def _build_engine(self, folder: Path) -> tuple[np.ndarray, float, dict[str, Any]]:
        """Export (and quantize) the float32 model into ``folder``.

        Returns:
            The float32 probe outputs, their time, and the build's facts (CPU, seconds, size).
        """
        steps = ["float32 reference", "export" + (" + int8" if self.quantize else "")]
        with tqdm(
            total=len(steps), desc=f"Building the ONNX {self.precision} engine (once)", unit="step"
        ) as bar:
            bar.set_postfix_str(steps[0])
            reference, reference_seconds, reference_rt = self._reference_probe()
            bar.update()
            bar.set_postfix_str(steps[1])
            started = time.perf_counter()
            extras = self._engine_files(reference_rt)
            export_decoder(reference_rt.model, folder, quantize=self.quantize)
            build_seconds = time.perf_counter() - started
            del reference_rt
            for name, array in extras.items():
                save_array(folder / f"{name}.npy", array)
            bar.update()
        logger.info(
            "%s: built the ONNX %s engine in %.0f s (%.0f MB) in %s",
            self.source.model,
            self.precision,
            build_seconds,
            folder_bytes(folder) / 1e6,
            folder,
        )
        details = {
            "cpu": cpu_features().summary(),
            "build_seconds": round(build_seconds, 1),
            "disk_bytes": folder_bytes(folder),
        }
        return reference, reference_seconds, details

    @abstractmethod
    def _probe(self, runtime: RuntimeT) -> np.ndarray:
        """The fixed probe (:mod:`qwen3_rag.fidelity`) through the recipe on ``runtime``."""

    def _engine_files(self, runtime: RuntimeT) -> dict[str, np.ndarray]:
        """Arrays the engine's runtime needs beside the graph (the reranker's yes/no rows)."""
        return {}

    @abstractmethod
    def _engine_runtime(self, decoder: OnnxDecoder, folder: Path) -> RuntimeT:
        """This class's runtime over an ONNX decoder (its files beside it in ``folder``)."""

    @abstractmethod
    def _load_runtime(self) -> RuntimeT:
        """Load the tokenizer and the model (called once per process and key)."""

    # -- helpers for _load_runtime -----------------------------------------------------------

    def _load(self, auto_class: Any) -> tuple[Any, Any]:
        """The private tokenizer and ``auto_class.from_pretrained(...)`` for this object."""
        tokenizer = load_fast_tokenizer(self.source)
        model = load_pretrained(auto_class, self.source, self.device, self.dtype)
        check_kind(self.source, self.checkpoint_kind)  # the files are local now, hub ones too
        return tokenizer, model

    def _prepare(self, decoder: Any, pad_id: int) -> bool:
        """Quantize ``decoder`` if asked, then decide whether the lean forward applies.

        Returns:
            ``True`` when the lean forward supports the model and its probe matches the
            model's own forward within :func:`~qwen3_rag._forward.tolerance`; otherwise one
            warning is logged and the model's own forward is used (slower, still exact).
        """
        if self.quantize == "int8":
            quantize_int8(decoder)
        if not _forward.supports(decoder):
            logger.warning(
                "%s: this transformers version lays out the Qwen3 model differently from what "
                "qwen3_rag's lean forward reads; using transformers' own forward (exact, slower)",
                self.source.model,
            )
            return False
        if self.quantize is None:
            _forward.fuse_projections(decoder)  # before the check, so the check covers it
        gap = _forward.self_check(decoder, pad_id)
        limit = _forward.tolerance(self.dtype, self.quantize)
        if not gap <= limit:
            logger.warning(
                "%s: qwen3_rag's lean forward differs from transformers' own forward by %.2g "
                "(limit %.0e) on the load-time probe, so this transformers version changed "
                "the model's semantics; using transformers' own forward (exact, slower)",
                self.source.model,
                gap,
                limit,
            )
            return False
        logger.debug("%s: lean forward checked (gap %.2g)", self.source.model, gap)
        return True
