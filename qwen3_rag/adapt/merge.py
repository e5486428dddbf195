"""Merge LoRA checkpoints into one normal Qwen3 model folder, and prove the merge worked.

**What is merged.** Each epoch checkpoint is a LoRA adapter: a low-rank update
``delta_e = (alpha / r) * B_e @ A_e`` of some linear weights of the same base model.
Checkpoints are combined per tensor by spherical linear interpolation (slerp) of these
**updates**, not of the full weights: every checkpoint shares the base weights ``W0``, which
dwarf the updates, so the full tensors are nearly parallel and slerp of them collapses to a
plain average, while the updates point in genuinely different directions. Slerp of the
updates keeps their scale where averaging two partly orthogonal updates would shrink it, and
leaves every tensor no adapter touched exactly as it was. Two checkpoints are interpolated
at ``t`` (default 0.5); more are folded in one by one, the ``k``-th at ``t = 1/k`` (a
running spherical mean). The result, ``W0 + sum_e c_e * delta_e`` with per-tensor
coefficients ``c_e``, is itself a LoRA adapter of rank ``sum r_e`` (the ``A_e`` stacked, the
``c_e * B_e`` side by side), so the merged model has an exact adapter-in-place twin.

**Verification.** Before a folder is kept, it is loaded back through
:class:`qwen3_rag.Embedder` (or :class:`qwen3_rag.Reranker`), exactly as a user would load
it, and its outputs on probe texts are compared with (1) the adapter-in-place model, which
they must equal (max difference <= 1e-4), and (2) the base model, from which they must
differ (max difference > 1e-3). A merge into the wrong class, a save that dropped the
update, or a training run that changed nothing fails, and the folder is not written.

Example:
    >>> import torch
    >>> from qwen3_rag.adapt.merge import slerp
    >>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    >>> slerp(a, b, 0.5)
    tensor([0.7071, 0.7071])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qwen3_rag._files import replace_folder, write_json
from qwen3_rag.adapt.train import AdaptedModel, require_peft
from qwen3_rag.embedder import Embedder
from qwen3_rag.errors import Qwen3RagError
from qwen3_rag.identity import ADAPT_METADATA, ModelIdentity, weights_id
from qwen3_rag.instructions import InstructionLike
from qwen3_rag.loading import clear_cache, load_tokenizer
from qwen3_rag.options import DEFAULT_MAX_LENGTH
from qwen3_rag.reranker import Reranker

__all__ = [
    "METADATA_FILE",
    "MergeError",
    "MergeReport",
    "merge_checkpoints",
    "slerp",
    "slerp_weights",
    "spherical_mean_weights",
    "verify_model_folder",
]

logger = logging.getLogger(__name__)

#: The small metadata file written into a merged model folder.
METADATA_FILE = ADAPT_METADATA
#: Largest difference allowed between the merged folder and the adapter-in-place model.
SAME = 1e-4
#: Smallest difference required between the merged folder and the base model.
CHANGED = 1e-3


class MergeError(Qwen3RagError, RuntimeError):
    """A merged model failed verification; nothing was written."""


def slerp_weights(
    a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-8
) -> tuple[float, float]:
    """The coefficients ``(c_a, c_b)`` with ``slerp(a, b, t) = c_a * a + c_b * b``.

    ``Omega`` is the angle between ``a`` and ``b`` as flat vectors; ``c_a =
    sin((1 - t) Omega) / sin(Omega)``, ``c_b = sin(t Omega) / sin(Omega)``. When either is
    zero or they are (anti)parallel (``sin(Omega) < eps``), linear interpolation
    ``(1 - t, t)`` is used. Computed in float64.
    """
    x, y = a.detach().double().flatten(), b.detach().double().flatten()
    nx, ny = float(x.norm()), float(y.norm())
    if nx < eps or ny < eps:
        return 1.0 - t, t
    cos = max(-1.0, min(1.0, float(x @ y) / (nx * ny)))
    omega = math.acos(cos)
    s = math.sin(omega)
    if s < eps:
        return 1.0 - t, t
    return math.sin((1.0 - t) * omega) / s, math.sin(t * omega) / s


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical linear interpolation of two tensors (as flat vectors), ``t`` in [0, 1]."""
    ca, cb = slerp_weights(a, b, t)
    return (ca * a.double() + cb * b.double()).to(a.dtype)


def spherical_mean_weights(deltas: Sequence[torch.Tensor], t: float | None = None) -> list[float]:
    """Coefficients ``c`` with ``merged = sum_e c[e] * deltas[e]``.

    Two tensors: ``slerp(d0, d1, t)`` (``t`` default 0.5). More: ``m = d0``, then
    ``m = slerp(m, d_k, 1 / (k + 1))`` for each further one (``t`` must be ``None``).
    """
    if not deltas:
        raise ValueError("no tensors to merge")
    if t is not None and len(deltas) != 2:
        raise ValueError("t applies to exactly two checkpoints")
    coefficients = [1.0]
    current = deltas[0].double()
    for k in range(1, len(deltas)):
        step = t if t is not None else 1.0 / (k + 1)
        ca, cb = slerp_weights(current, deltas[k], step)
        coefficients = [c * ca for c in coefficients] + [cb]
        current = ca * current + cb * deltas[k].double()
    return coefficients


@dataclass
class MergeReport:
    """What :func:`merge_checkpoints` did.

    Attributes:
        folder: The model folder written.
        checkpoints: The checkpoints merged.
        tensors: LoRA-updated tensors merged.
        max_gap: Largest output difference to the adapter-in-place model.
        max_change: Largest output difference to the base model.
    """

    folder: Path
    checkpoints: list[Path]
    tensors: int
    max_gap: float
    max_change: float

    def to_dict(self) -> dict[str, Any]:
        """As plain data."""
        return {
            "folder": str(self.folder),
            "checkpoints": [str(c) for c in self.checkpoints],
            "tensors": self.tensors,
            "max_gap": self.max_gap,
            "max_change": self.max_change,
        }


def _lora_layers(model: Any) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def _combine(adapted: AdaptedModel, names: list[str], t: float | None) -> tuple[str, int]:
    """Put the slerp of the adapters in place as one adapter; returns (its name, tensors)."""
    layers = _lora_layers(adapted.peft_model)
    if len(names) == 1:
        return names[0], len(layers)
    peft = require_peft()
    first = adapted.peft_model.peft_config[names[0]]
    rank = sum(adapted.peft_model.peft_config[n].r for n in names)
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=rank,  # scaling 1: the per-adapter scalings go into B
        lora_dropout=0.0,
        target_modules=first.target_modules,
        bias="none",
    )
    adapted.peft_model.add_adapter("merged", config)
    with torch.no_grad():
        for layer in layers:
            deltas = [layer.get_delta_weight(n) for n in names]
            c = spherical_mean_weights(deltas, t)
            a = torch.cat([layer.lora_A[n].weight for n in names], dim=0)
            b = torch.cat(
                [c[e] * layer.scaling[n] * layer.lora_B[n].weight for e, n in enumerate(names)],
                dim=1,
            )
            layer.lora_A["merged"].weight.copy_(a)
            layer.lora_B["merged"].weight.copy_(b)
    adapted.peft_model.set_adapter("merged")
    return "merged", len(layers)


def _outputs_in_place(adapted: AdaptedModel, probes: Any) -> np.ndarray:
    adapted.peft_model.eval()
    with torch.no_grad():
        if adapted.kind == "embedding":
            queries, documents = probes
            q, _ = adapted.embed(adapted.formatter.query_inputs(queries))
            d, _ = adapted.embed(adapted.formatter.document_inputs(documents))
            return torch.cat([q, d]).cpu().numpy()
        margin, _ = adapted.yes_minus_no(list(probes))
        return torch.sigmoid(margin).cpu().numpy()


def _outputs_of_folder(
    kind: str,
    folder: str,
    instruction: InstructionLike,
    probes: Any,
    max_length: int,
    *,
    keep: bool,
) -> np.ndarray:
    """The outputs of the model in ``folder``, loaded as a user loads it (CPU, float32).

    ``keep=False`` drops the loaded model from the shared cache afterwards.
    """
    model: Embedder | Reranker
    if kind == "embedding":
        model = Embedder(
            folder, instruction=instruction, device="cpu", dtype="float32", max_length=max_length
        )
        queries, documents = probes
        out = np.concatenate([model.embed_queries(queries), model.embed_documents(documents)])
    else:
        model = Reranker(
            folder, instruction=instruction, device="cpu", dtype="float32", max_length=max_length
        )
        out = np.asarray(model.score_pairs(list(probes)), dtype=np.float32)
    if not keep:
        clear_cache(model.key)
    return out


def verify_model_folder(
    folder: str | Path,
    *,
    base_model: str,
    reference: np.ndarray,
    probes: Any,
    kind: str = "embedding",
    instruction: InstructionLike = None,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> tuple[float, float]:
    """Check a merged model folder as a user would load it; raise :class:`MergeError` if wrong.

    Args:
        folder: The folder to check.
        base_model: The model it was adapted from.
        reference: The adapter-in-place model's outputs on ``probes`` (embeddings: query
            vectors then document vectors; reranker: scores).
        probes: ``(queries, documents)`` for an embedding model, ``[(query, document)]``
            pairs for a reranker.
        kind: ``"embedding"`` or ``"reranker"``.
        instruction: The instruction the outputs were computed with.
        max_length: The ``max_length`` they were computed with (inputs are cut the same way).

    Returns:
        ``(max difference to the reference, max difference to the base model)``.

    Raises:
        MergeError: If the folder's outputs differ from the reference by more than 1e-4, or
            from the base model's by at most 1e-3.
    """
    try:
        got = _outputs_of_folder(kind, str(folder), instruction, probes, max_length, keep=False)
    except (OSError, ValueError) as exc:
        raise MergeError(f"the merged model in {folder} does not load: {exc}") from exc
    base = _outputs_of_folder(kind, base_model, instruction, probes, max_length, keep=True)
    gap = float(np.abs(got - reference).max())
    change = float(np.abs(got - base).max())
    if not gap <= SAME:
        raise MergeError(
            f"the merged model in {folder} does not reproduce the adapter-in-place model: "
            f"outputs differ by up to {gap:.3g} (allowed {SAME:g}); the LoRA update was not "
            f"merged into the weights this folder loads"
        )
    if not change > CHANGED:
        raise MergeError(
            f"the merged model in {folder} gives the base model's outputs (max difference "
            f"{change:.3g}, needs > {CHANGED:g}): the adapter had no effect (merged into the "
            f"wrong class, or training did not move the weights)"
        )
    return gap, change


def merge_checkpoints(
    base_model: str,
    checkpoints: Sequence[str | Path],
    out: str | Path,
    *,
    probes: Any,
    kind: str = "embedding",
    instruction: InstructionLike = None,
    t: float | None = None,
    metadata: dict[str, Any] | None = None,
    max_length: int = 8192,
    overwrite: bool = False,
) -> MergeReport:
    """Merge LoRA checkpoints (slerp of their updates) into a verified Qwen3 model folder.

    The folder holds ``model.safetensors`` (float32, so the update is not rounded away),
    ``config.json``, the tokenizer files and ``qwen3_rag_adapt.json`` (``metadata`` plus what
    was merged); every class of this project loads it like a hub model. It is written to a
    temporary folder, verified (:func:`verify_model_folder`) and only then renamed to
    ``out``.

    Args:
        base_model: The base model the checkpoints were trained on.
        checkpoints: LoRA checkpoint folders (e.g. :attr:`TrainReport.checkpoints`).
        out: The model folder to write.
        probes: Verification inputs: ``(queries, documents)`` for an embedding model,
            ``[(query, document)]`` for a reranker.
        kind: ``"embedding"`` or ``"reranker"``.
        instruction: The instruction trained with (for the probes).
        t: For two checkpoints, the slerp position (default 0.5).
        metadata: Written into ``qwen3_rag_adapt.json``.
        max_length: Most tokens per probe input.
        overwrite: Replace an existing ``out``.

    Returns:
        The :class:`MergeReport`.

    Raises:
        MergeError: If the merged model fails verification (nothing is written).
        FileExistsError: If ``out`` exists and ``overwrite`` is false.
        ValueError: If no checkpoint is given.
    """
    if not checkpoints:
        raise ValueError("no checkpoints to merge")
    if t is not None and not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be between 0 and 1, got {t}")
    target = Path(out)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists: pass overwrite=True to replace it")
    folders = [Path(c) for c in checkpoints]
    adapted = AdaptedModel(
        kind,
        base_model,
        instruction=instruction,
        max_length=max_length,
        device="cpu",
        dtype="float32",
    )
    names = adapted.load_adapters(folders)
    name, tensors = _combine(adapted, names, t)
    reference = _outputs_in_place(adapted, probes)
    merged = adapted.peft_model.merge_and_unload(adapter_names=[name])
    measured: dict[str, float] = {}
    base_identity = ModelIdentity(weights_id(adapted.source) or f"unresolved:{base_model}")

    def build(tmp: Path) -> None:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        load_tokenizer(adapted.source).save_pretrained(str(tmp))
        measured["gap"], measured["change"] = verify_model_folder(
            tmp,
            base_model=base_model,
            reference=reference,
            probes=probes,
            kind=kind,
            instruction=instruction,
            max_length=max_length,
        )
        info = {
            **(metadata or {}),
            "kind": kind,
            "base_model": base_model,
            "base_identity": base_identity.to_dict(),
            "merge": {
                "method": "slerp of the LoRA updates" if len(folders) > 1 else "LoRA merged",
                "checkpoints": [str(f) for f in folders],
                "t": t,
                "tensors": tensors,
                "max_gap_to_adapter": measured["gap"],
                "max_change_from_base": measured["change"],
            },
        }
        write_json(tmp / METADATA_FILE, info)

    replace_folder(target, build)
    gap, change = measured["gap"], measured["change"]
    logger.info(
        "merged %d checkpoint(s) into %s (max gap to the adapter %.2g, change from base %.2g)",
        len(folders),
        target,
        gap,
        change,
    )
    return MergeReport(target, folders, tensors, gap, change)
