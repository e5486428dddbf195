"""Metrics by ``trec_eval`` (through ``pytrec-eval-terrier``) and the paired significance test.

Install the extra: ``pip install "qwen3-rag[eval]"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from qwen3_rag._extras import require

__all__ = [
    "DEFAULT_METRICS",
    "RESAMPLES",
    "Metric",
    "Run",
    "paired_test",
    "parse_metric",
    "score_run",
]

#: The metrics reported when none are asked for (BEIR's and MTEB's headline numbers).
DEFAULT_METRICS: tuple[str, ...] = ("nDCG@10", "Recall@10", "Recall@100", "MRR@10", "MAP@100")
#: Resamples of the paired randomisation test (exact enumeration below ``2**n`` of them).
RESAMPLES = 10_000

Run = dict[str, list[tuple[str, float]]]
"""A ranking per query id: ``(document id, score)`` pairs, best first."""

# family -> (display name, trec_eval measure or None for MRR)
_FAMILIES: dict[str, tuple[str, str | None]] = {
    "ndcg": ("nDCG", "ndcg_cut"),
    "recall": ("Recall", "recall"),
    "map": ("MAP", "map_cut"),
    "mrr": ("MRR", None),
    "p": ("P", "P"),
    "precision": ("P", "P"),
}


@dataclass(frozen=True)
class Metric:
    """A metric at a cutoff, e.g. ``nDCG@10``.

    Attributes:
        family: ``"ndcg"``, ``"recall"``, ``"map"``, ``"mrr"`` or ``"p"``.
        k: The cutoff (results per query looked at).
    """

    family: str
    k: int

    @property
    def name(self) -> str:
        """The display name, e.g. ``"nDCG@10"``."""
        return f"{_FAMILIES[self.family][0]}@{self.k}"


def parse_metric(text: str) -> Metric:
    """Parse a metric name such as ``"nDCG@10"``, ``"recall@100"``, ``"MRR@10"``, ``"P@5"``.

    Args:
        text: ``name@k``; names (any case): ``ndcg``, ``recall``, ``map``, ``mrr``, ``p`` /
            ``precision``.

    Returns:
        The metric.

    Raises:
        ValueError: If the name is unknown or ``k`` is not a positive integer.

    Example:
        >>> parse_metric("ndcg@10").name
        'nDCG@10'
    """
    match = re.fullmatch(r"\s*([A-Za-z]+)\s*@\s*(\d+)\s*", str(text))
    family = match.group(1).lower() if match else ""
    if not match or family not in _FAMILIES or int(match.group(2)) < 1:
        raise ValueError(
            f"metric {text!r} is not one of nDCG@k, Recall@k, MAP@k, MRR@k, P@k (k >= 1)"
        )
    return Metric("p" if family == "precision" else family, int(match.group(2)))


def _trec_order(ranked: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """Sort as ``trec_eval`` does: score descending, then document id in reverse byte order."""
    by_id = sorted(ranked, key=lambda x: x[0].encode("utf-8"), reverse=True)
    return sorted(by_id, key=lambda x: -x[1])  # stable: equal scores keep reverse id order


def score_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Sequence[tuple[str, float]]],
    metrics: Sequence[str | Metric] = DEFAULT_METRICS,
) -> dict[str, dict[str, float]]:
    """Per-query metric values of a run, computed by ``trec_eval`` (``pytrec_eval``).

    Every query in ``qrels`` gets a value; a query missing from the run scores 0 (like
    ``trec_eval -c``). MRR@k is ``recip_rank`` over each query's first ``k`` results.

    Args:
        qrels: Query id -> document id -> relevance grade.
        run: Query id -> ``(document id, score)`` pairs (``trec_eval`` orders them by score,
            ties by document id in reverse order).
        metrics: Metric names (``"nDCG@10"`` ...) or :class:`Metric` objects.

    Returns:
        Metric name -> query id -> value.

    Example:
        >>> qrels = {"q1": {"a": 1}}
        >>> score_run(qrels, {"q1": [("b", 0.9), ("a", 0.8)]}, ["MRR@10", "Recall@1"])
        {'MRR@10': {'q1': 0.5}, 'Recall@1': {'q1': 0.0}}
    """
    pytrec_eval = require("pytrec_eval", "eval", "qwen3_rag.evaluation")
    parsed = [m if isinstance(m, Metric) else parse_metric(m) for m in metrics]
    judged = {q: {d: int(g) for d, g in row.items()} for q, row in qrels.items()}
    full = {q: {d: float(s) for d, s in run.get(q, ())} for q in judged}
    out: dict[str, dict[str, float]] = {m.name: dict.fromkeys(judged, 0.0) for m in parsed}

    cutoffs: dict[str, list[int]] = {}
    for m in parsed:
        measure = _FAMILIES[m.family][1]
        if measure is not None:
            cutoffs.setdefault(measure, []).append(m.k)
    if cutoffs:
        measures = {f"{name}.{','.join(map(str, sorted(set(ks))))}" for name, ks in cutoffs.items()}
        values = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(full)
        for m in parsed:
            measure = _FAMILIES[m.family][1]
            if measure is None:
                continue
            for q, row in values.items():
                out[m.name][q] = float(row[f"{measure}_{m.k}"])
    for k in sorted({m.k for m in parsed if m.family == "mrr"}):
        cut = {q: dict(_trec_order(docs.items())[:k]) for q, docs in full.items()}
        values = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(cut)
        for q, row in values.items():
            out[f"MRR@{k}"][q] = float(row["recip_rank"])
    return out


def paired_test(
    a: Sequence[float] | NDArray[np.float64],
    b: Sequence[float] | NDArray[np.float64],
    *,
    method: Literal["permutation", "t-test"] = "permutation",
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> float:
    """Two-sided p-value that two systems' per-query values have the same mean.

    ``"permutation"`` (the default) is the paired randomisation test: under the null
    hypothesis the two systems are exchangeable on each query, so the sign of each per-query
    difference is flipped at random and the observed mean difference is compared with the
    resulting distribution (exactly, over all ``2**n`` sign patterns, when that is at most
    ``resamples``; otherwise with ``resamples`` random patterns from a fixed seed, so the
    p-value is reproducible). It assumes nothing about the shape of the differences, which
    for IR metrics are bounded, skewed and often zero; Smucker, Allan & Carterette (CIKM 2007)
    found it the test to use for IR evaluation. ``"t-test"`` is scipy's paired t-test, which
    agrees closely on a few dozen queries or more. Neither corrects for testing many
    configurations at once.

    Args:
        a: Per-query values of one system.
        b: The other system's values for the same queries, in the same order.
        method: ``"permutation"`` or ``"t-test"``.
        resamples: Random sign patterns for the permutation test.
        seed: Seed of those patterns.

    Returns:
        The p-value; 1.0 when the two systems score every query identically.

    Raises:
        ValueError: If the two sequences differ in length or are empty, or ``method`` is
            unknown.

    Example:
        >>> paired_test([0.5, 0.7, 0.9, 0.4], [0.5, 0.7, 0.9, 0.4])
        1.0
        >>> round(paired_test([1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]), 3)  # 2 of 16 patterns
        0.125
    """
    stats = require("scipy.stats", "eval", "qwen3_rag.evaluation")
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or not len(x):
        raise ValueError(
            f"paired_test needs two equally long, non-empty lists, got {x.shape} and {y.shape}"
        )
    if np.array_equal(x, y):
        return 1.0
    if method == "t-test":
        p = float(stats.ttest_rel(x, y).pvalue)
        return 1.0 if math.isnan(p) else p
    if method != "permutation":
        raise ValueError(f"method must be 'permutation' or 't-test', not {method!r}")

    def mean_difference(u: NDArray[np.float64], v: NDArray[np.float64], axis: int) -> Any:
        return np.mean(u - v, axis=axis)

    result = stats.permutation_test(
        (x, y),
        mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=resamples,
        alternative="two-sided",
        batch=max(1, 2**22 // len(x)),
        rng=np.random.default_rng(seed),
    )
    return float(min(1.0, result.pvalue))
