"""How far a non-exact path strays from float32: a fixed probe, floors, stored records.

Every path that is not the exact float32 PyTorch one on CPU (bfloat16, int8, the ONNX
engine) embeds :data:`PROBE_QUERIES` and :data:`PROBE_DOCUMENTS` and reranks
:data:`PROBE_PAIRS` through the same recipe code beside the float32 reference, once per
artefact (model identity + engine + precision).
The result, a :class:`Fidelity`, is logged, stored in the engine cache
(:func:`artefact_folder`) and shown by ``qwen3-rag doctor``; a path below its floor is
refused with :class:`~qwen3_rag.errors.FidelityError`:

* embeddings: the smallest cosine between a probe vector and its float32 reference must be
  at least :data:`MIN_COSINE`;
* reranking: the largest difference of a probe score (P(yes)) from its float32 reference
  must be at most :data:`MAX_SCORE_DIFF`.

The floors sit below what the fast paths measure (cosine 0.997-0.9999, score differences
under 0.01 on the 0.6B shapes) and far above a broken path (a wrong layout or corrupted
weights gives cosines near 0). ``qwen3-rag check-server`` holds model servers to the same
probe and floors. The engine cache lives in ``$QWEN3_RAG_ENGINE_CACHE``, else
``$XDG_CACHE_HOME/qwen3_rag/engines``, else ``~/.cache/qwen3_rag/engines``.

Example:
    >>> import numpy as np
    >>> ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> f = measure("embedder", "w (torch, bfloat16)", ref, ref * 2, seconds=1.0,
    ...             reference_seconds=2.0)
    >>> f.metric, round(f.value, 6), f.ok
    ('min_cosine', 1.0, True)
    >>> bad = measure("embedder", "w (torch, int8)", ref, ref[::-1], seconds=1.0,
    ...               reference_seconds=1.0)
    >>> bad.ok
    False
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_rag._files import json_object, save_array, write_json
from qwen3_rag.errors import FidelityError

__all__ = [
    "ENGINE_CACHE_ENV",
    "MAX_SCORE_DIFF",
    "MIN_COSINE",
    "PROBE_DOCUMENTS",
    "PROBE_PAIRS",
    "PROBE_QUERIES",
    "Fidelity",
    "artefact_folder",
    "check",
    "engine_cache",
    "measure",
    "read",
    "records",
    "write",
]

logger = logging.getLogger(__name__)

#: The environment variable that moves the engine cache (artefacts and fidelity records).
ENGINE_CACHE_ENV = "QWEN3_RAG_ENGINE_CACHE"
#: Embeddings: the smallest probe cosine to the float32 reference a path may have. bfloat16
#: stays well inside it on the real models (cosine >= 0.999); recipe mistakes (a missing
#: instruction or <|endoftext|>) and broken artefacts fall far outside.
MIN_COSINE = 0.99
#: Reranking: the largest probe score (P(yes)) difference from float32 a path may have
#: (bfloat16: ~0.01 on the real models).
MAX_SCORE_DIFF = 0.05
#: Bump when the artefact layout changes: older artefacts are then rebuilt, never misread.
ARTEFACT_FORMAT = 1
RECORD = "fidelity.json"
_ISO = "%Y-%m-%dT%H:%M:%SZ"
REFERENCE = "reference.npy"

#: Queries of the probe set (the published examples, a non-Latin one, an empty one).
PROBE_QUERIES = (
    "What is the capital of China?",
    "Explain gravity",
    "北京是哪个国家的首都？",  # noqa: RUF001
    "",
)
#: Documents of the probe set; the last is long enough to be truncated at ``check-server``'s
#: probe ``max_length``.
PROBE_DOCUMENTS = (
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other. It gives weight to "
    "physical objects and is responsible for the movement of planets around the sun.",
    "def reverse(xs):\n    return xs[::-1]\n",
    "Die Hauptstadt von Deutschland ist Berlin, eine Stadt mit vielen Museen. " * 60,
)
#: The reranking probe: every query with every document.
PROBE_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (q, d) for q in PROBE_QUERIES for d in PROBE_DOCUMENTS
)


def engine_cache() -> Path:
    """The folder of engine artefacts and fidelity records (see the module docstring)."""
    configured = os.environ.get(ENGINE_CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "qwen3_rag" / "engines"


def artefact_folder(kind: str, identity: Any) -> Path:
    """Where the artefact (and fidelity record) of one model identity lives.

    Args:
        kind: ``"embedder"`` or ``"reranker"``.
        identity: The model's :class:`~qwen3_rag.identity.ModelIdentity`: weights, engine
            and precision all enter the key, so artefacts of different weights, engines or
            precisions never mix.

    Example:
        >>> from qwen3_rag.identity import ModelIdentity
        >>> artefact_folder("embedder", ModelIdentity("sha:ab", "onnx", "int8")).name[:19]
        'embedder-onnx-int8-'
    """
    key = f"{ARTEFACT_FORMAT}|{kind}|{identity}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return engine_cache() / f"{kind}-{identity.engine}-{identity.precision}-{digest}"


@dataclass(frozen=True)
class Fidelity:
    """One path's probe beside the float32 reference.

    Attributes:
        kind: ``"embedder"`` or ``"reranker"``.
        identity: The path's model identity, as text (weights, engine, precision).
        metric: ``"min_cosine"`` (embeddings) or ``"max_score_diff"`` (reranking).
        value: The measured value.
        floor: The floor it is held to (:data:`MIN_COSINE` or :data:`MAX_SCORE_DIFF`).
        probes: How many probe inputs were compared.
        seconds: The path's time on the probe.
        reference_seconds: The float32 reference's time on the same probe (at measuring).
        measured: When it was measured (UTC, ISO 8601).
        details: What else was recorded (the artefact's build time and size, the CPU).
    """

    kind: str
    identity: str
    metric: str
    value: float
    floor: float
    probes: int
    seconds: float
    reference_seconds: float
    measured: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the value is within the floor."""
        if self.metric == "min_cosine":
            return self.value >= self.floor
        return self.value <= self.floor

    @property
    def speedup(self) -> float:
        """The probe's speed against float32 (a rough figure: the probe is small)."""
        return self.reference_seconds / self.seconds if self.seconds > 0 else float("nan")

    def describe(self) -> str:
        """One line: what was measured, against which floor, and the probe's speed."""
        sign = ">=" if self.metric == "min_cosine" else "<="
        verdict = "ok" if self.ok else "REFUSED"
        return (
            f"{self.identity}: {self.metric} {self.value:.5f} (floor {sign} {self.floor}) "
            f"{verdict}; probe {self.speedup:.2f}x float32"
        )

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fidelity:
        """The record from :meth:`to_json`'s object."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _min_cosine(reference: np.ndarray, outputs: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    out = outputs.astype(np.float64)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosines = np.where(norms > 0, (ref * out).sum(axis=1) / np.maximum(norms, 1e-300), 0.0)
    return float(np.nan_to_num(cosines, nan=0.0).min())


def measure(
    kind: str,
    identity: str,
    reference: np.ndarray,
    outputs: np.ndarray,
    *,
    seconds: float,
    reference_seconds: float,
    details: dict[str, Any] | None = None,
) -> Fidelity:
    """Compare a path's probe outputs with the float32 reference's.

    Args:
        kind: ``"embedder"`` (outputs are vectors: min cosine) or ``"reranker"`` (outputs
            are scores: largest absolute difference).
        identity: The path's identity, as text.
        reference: The float32 outputs.
        outputs: The path's outputs, the same shape.
        seconds: The path's probe time.
        reference_seconds: The reference's probe time.
        details: Extra facts to store with the record.

    Returns:
        The :class:`Fidelity`.

    Raises:
        ValueError: If the shapes differ.
    """
    if reference.shape != outputs.shape:
        raise ValueError(f"probe shapes differ: reference {reference.shape}, path {outputs.shape}")
    if kind == "embedder":
        metric, value, floor = "min_cosine", _min_cosine(reference, outputs), MIN_COSINE
    else:
        diff = np.abs(reference.astype(np.float64) - outputs.astype(np.float64))
        metric, value, floor = (
            "max_score_diff",
            float(np.nan_to_num(diff, nan=1.0).max()),
            MAX_SCORE_DIFF,
        )
    return Fidelity(
        kind=kind,
        identity=identity,
        metric=metric,
        value=value,
        floor=floor,
        probes=int(reference.shape[0]),
        seconds=float(seconds),
        reference_seconds=float(reference_seconds),
        details=dict(details or {}),
    )


def write(folder: Path, fidelity: Fidelity, reference: np.ndarray | None = None) -> None:
    """Store a record (and the float32 probe outputs, to re-check the artefact at each load)."""
    if reference is not None:
        save_array(folder / REFERENCE, reference.astype(np.float32))
    write_json(folder / RECORD, fidelity.to_json())


def read(folder: Path) -> tuple[Fidelity | None, np.ndarray | None]:
    """The stored record and float32 probe outputs of an artefact folder, where present.

    An unreadable record counts as missing (it is measured again), never as a pass.
    """
    record = reference = None
    path = folder / RECORD
    if path.is_file():
        try:
            record = Fidelity.from_json(json_object(path.read_bytes(), str(path)))
        except (ValueError, TypeError, KeyError):
            logger.warning("%s: unreadable fidelity record; measuring again", path)
    if (folder / REFERENCE).is_file():
        try:
            reference = np.load(folder / REFERENCE, allow_pickle=False)
        except (ValueError, OSError):
            logger.warning("%s: unreadable probe reference; measuring again", folder)
    return record, reference


def records() -> list[Fidelity]:
    """Every fidelity record in the engine cache, oldest first (``qwen3-rag doctor``)."""
    root = engine_cache()
    found = [read(folder)[0] for folder in sorted(root.glob("*")) if folder.is_dir()]
    return sorted((r for r in found if r is not None), key=lambda r: r.measured)


def check(fidelity: Fidelity) -> None:
    """Log the record; refuse the path if it is below its floor.

    Raises:
        FidelityError: If the measured value is outside the floor; the message says what
            was measured and what to use instead.
    """
    if fidelity.ok:
        logger.info("fidelity: %s", fidelity.describe())
        return
    raise FidelityError(
        f"{fidelity.describe()}: this path computes too far from the float32 model to be "
        f"used (floor {fidelity.floor}, qwen3_rag.fidelity); use the exact default "
        f"(precision='exact') or another engine/precision",
        fidelity=fidelity,
    )
