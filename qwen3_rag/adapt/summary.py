"""What an adaptation run did, stage by stage, and the verdict: :class:`AdaptSummary`.

:func:`qwen3_rag.adapt.adapt` returns one; ``adapt.json`` holds the same data, and
``qwen3-rag adapt`` prints :meth:`AdaptSummary.table` (or ``--json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["STAGES", "AdaptSummary"]

#: The stages of an adaptation run, in order.
STAGES: tuple[str, ...] = ("synthesize", "filter", "mine", "train", "merge", "evaluate")


@dataclass
class AdaptSummary:
    """What a run did, stage by stage (``adapt.json``), with the verdict.

    Attributes:
        folder: The output folder.
        stages: Stage name -> its report (plain data).
    """

    folder: Path
    stages: dict[str, dict[str, Any]]

    @property
    def model(self) -> Path | None:
        """The adapted model folder, once merged."""
        return Path(self.stages["merge"]["folder"]) if "merge" in self.stages else None

    @property
    def improved(self) -> bool | None:
        """Whether the adapted model is better on the held-out split (``None``: not evaluated).

        Better means a higher nDCG@10 with a significant paired test (p < alpha).
        """
        ev = self.stages.get("evaluate")
        if not ev:
            return None
        return bool(ev["delta"] > 0 and ev["significant"])

    @property
    def verdict(self) -> str:
        """One sentence on whether adaptation helped."""
        ev = self.stages.get("evaluate")
        if not ev:
            return "not evaluated yet"
        change = (
            f"nDCG@10 {ev['before']['nDCG@10']:.4f} -> {ev['after']['nDCG@10']:.4f} "
            f"({ev['delta']:+.4f}, p={_p(ev['p_value'])}, {ev['queries']} test queries)"
        )
        if self.improved:
            return f"The adapted model is better: {change}."
        if ev["delta"] > 0:
            return (
                f"The adapted model is NOT clearly better: {change} is not significant; keep "
                f"the base model, or add documents or epochs and run again."
            )
        return (
            f"The adapted model is NOT better: {change}. Keep the base model; try more "
            f"documents, another threshold or fewer epochs."
        )

    def to_dict(self) -> dict[str, Any]:
        """As plain data (what ``--json`` prints)."""
        return {
            "folder": str(self.folder),
            "model": str(self.model) if self.model else None,
            "improved": self.improved,
            "verdict": self.verdict,
            "stages": self.stages,
        }

    def table(self) -> str:
        """The summary table: one row per stage, then the verdict."""
        rows = [
            (name, _describe(name, self.stages[name])) for name in STAGES if name in self.stages
        ]
        width = max([len("stage"), *(len(n) for n, _ in rows)])
        lines = [f"qwen3-rag adapt: {self.folder}", f"{'stage'.ljust(width)}  result"]
        for name, text in rows:
            first, *rest = text.split("\n")
            lines.append(f"{name.ljust(width)}  {first}")
            lines.extend(f"{''.ljust(width)}  {line}" for line in rest)
        lines.append(self.verdict)
        return "\n".join(lines)


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _describe(stage: str, r: dict[str, Any]) -> str:
    if stage == "synthesize":
        fails = ", ".join(f"{k}: {v}" for k, v in r["failures"].items()) or "none"
        return (
            f"{r['passages']} passages, {r['queries']} with a query ({r['made']} made now, "
            f"{r['failed']} failed); failed attempts: {fails}"
        )
    if stage == "filter":
        removed = ", ".join(f"{k}: {v}" for k, v in r["removed"].items()) or "none"
        rule = "no threshold" if r["threshold"] is None else f"cosine >= {r['threshold']:g}"
        band = "" if not r["band"] else f", reranker in [{r['band'][0]:g}, {r['band'][1]:g}]"
        return f"{r['pairs']} pairs, {r['kept']} kept ({rule}{band}); removed: {removed}"
    if stage == "mine":
        s = r["splits"]
        return (
            f"{s['train']} train / {s['dev']} dev / {s['test']} test queries; {r['k']} "
            f"negatives each (skipped {r['skipped_margin']} within {r['margin']:g} of the "
            f"positive, {r['skipped_reranker']} by the reranker; {r['filled_random']} random)"
        )
    if stage == "train":
        parts = [
            f"epoch {e['epoch']}: loss {e['loss']:.4f}"
            + ("" if e["dev_loss"] is None else f", dev {e['dev_loss']:.4f}")
            for e in r["epochs"]
        ]
        text = "; ".join(parts)
        if r.get("resumed_from"):
            text += f" (resumed after epoch {r['resumed_from']})"
        rr = r.get("reranker")
        if rr:
            text += "\nreranker: " + "; ".join(
                f"epoch {e['epoch']}: loss {e['loss']:.4f}" for e in rr["epochs"]
            )
        return text
    if stage == "merge":
        text = (
            f"{len(r['checkpoints'])} checkpoint(s) -> {r['folder']} (verified: "
            f"max |merged - adapter| {r['max_gap']:.1e}, max |merged - base| {r['max_change']:.2g})"
        )
        rr = r.get("reranker")
        if rr:
            text += (
                f"\nreranker -> {rr['folder']}; yes-rate on dev pairs {rr['yes_rate_before']:.2f}"
                f" -> {rr['yes_rate_after']:.2f} (half are negatives: 0.50 is balanced), "
                f"accuracy {rr['accuracy_before']:.2f} -> {rr['accuracy_after']:.2f}"
            )
        return text
    if stage == "evaluate":
        return (
            "\n".join(
                f"{m}: {r['before'][m]:.4f} -> {r['after'][m]:.4f} "
                f"({r['after'][m] - r['before'][m]:+.4f}, p={_p(r['p_values'][m])})"
                for m in r["metrics"]
            )
            + f"\n({r['queries']} test queries, {r['documents']} passages, {r['test']} test)"
        )
    return json.dumps(r)


# -- the run ---------------------------------------------------------------------------------
