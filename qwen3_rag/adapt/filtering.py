"""Keep the synthetic pairs worth training on.

Two filters, each optional, each reported:

* **embedding**: the cosine similarity of the query and its passage under the current
  embedding model (queries with the instruction, passages raw: what retrieval computes) must
  reach a threshold. The Qwen3 Embedding report keeps pairs above 0.7 with the real models.
* **reranker band**: the reranker's P(yes) for the pair must fall inside ``[low, high]``:
  below ``low`` the query probably does not match its passage (noise), above ``high`` it may
  be too easy to teach anything (e.g. it copies the passage). The default band keeps
  everything the embedding filter kept; narrow it to try.

Every pair keeps its scores (``embedding_score``, ``rerank_score``) and says which filter
removed it (``removed_by``), so thresholds can be chosen afterwards from the file.

Example:
    >>> from qwen3_rag.adapt.filtering import apply_filters
    >>> pairs = [{"query": "a"}, {"query": "b"}, {"query": "c"}]
    >>> report = apply_filters(pairs, [0.9, 0.5, 0.8], None, threshold=0.7)
    >>> [p["kept"] for p in pairs], report.removed
    ([True, False, True], {'embedding': 1})
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qwen3_rag.embedder import Embedder
from qwen3_rag.reranker import Reranker

__all__ = ["FilterReport", "apply_filters", "filter_pairs"]

logger = logging.getLogger(__name__)


@dataclass
class FilterReport:
    """What the filters did.

    Attributes:
        pairs: Pairs looked at.
        kept: Pairs kept.
        removed: Pairs removed, by filter: ``"embedding"``, ``"rerank_low"``, ``"rerank_high"``
            (a pair counts for the first filter it fails, in that order).
        threshold: The embedding threshold used (``None``: off).
        band: The reranker band used (``None``: off).
    """

    pairs: int = 0
    kept: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    threshold: float | None = None
    band: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The counts as plain data."""
        return {
            "pairs": self.pairs,
            "kept": self.kept,
            "removed": dict(self.removed),
            "threshold": self.threshold,
            "band": list(self.band) if self.band else None,
        }


def _check_band(band: tuple[float, float] | None) -> tuple[float, float] | None:
    if band is None:
        return None
    low, high = (float(x) for x in band)
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"band must be (low, high) with 0 <= low <= high <= 1, got {band!r}")
    return low, high


def apply_filters(
    pairs: list[dict[str, Any]],
    embedding_scores: Sequence[float],
    rerank_scores: Sequence[float] | None,
    *,
    threshold: float | None = 0.7,
    band: tuple[float, float] | None = None,
) -> FilterReport:
    """Mark each pair kept or removed, in place, and record its scores.

    Args:
        pairs: The synthetic pairs (dicts); each gets ``embedding_score``, ``rerank_score``,
            ``kept`` and ``removed_by``.
        embedding_scores: Cosine similarity of each query and its passage.
        rerank_scores: The reranker's P(yes) for each pair, or ``None`` (no reranker).
        threshold: Keep pairs whose embedding score is at least this (``None``: no
            embedding filter). 0.7 is the report's value for the real models.
        band: ``(low, high)``: keep pairs whose reranker score lies within; ``None`` or no
            ``rerank_scores``: no reranker filter.

    Returns:
        The :class:`FilterReport`.

    Raises:
        ValueError: If the score lists and ``pairs`` differ in length, or ``band`` is not
            within [0, 1].
    """
    band = _check_band(band)
    if len(embedding_scores) != len(pairs) or (
        rerank_scores is not None and len(rerank_scores) != len(pairs)
    ):
        raise ValueError("one embedding (and reranker) score per pair is needed")
    removed: Counter[str] = Counter()
    for i, pair in enumerate(pairs):
        score = float(embedding_scores[i])
        rr = None if rerank_scores is None else float(rerank_scores[i])
        reason = None
        if threshold is not None and score < threshold:
            reason = "embedding"
        elif band is not None and rr is not None and rr < band[0]:
            reason = "rerank_low"
        elif band is not None and rr is not None and rr > band[1]:
            reason = "rerank_high"
        pair.update(embedding_score=score, rerank_score=rr, kept=reason is None, removed_by=reason)
        if reason:
            removed[reason] += 1
    report = FilterReport(
        pairs=len(pairs),
        kept=len(pairs) - sum(removed.values()),
        removed=dict(removed),
        threshold=threshold,
        band=band if rerank_scores is not None else None,
    )
    logger.info(
        "filter: kept %d of %d pairs (removed: %s)", report.kept, report.pairs, dict(removed)
    )
    return report


def filter_pairs(
    pairs: list[dict[str, Any]],
    passages: Mapping[str, str],
    embedder: Embedder,
    *,
    reranker: Reranker | None = None,
    threshold: float | None = 0.7,
    band: tuple[float, float] | None = None,
    passage_vectors: Mapping[str, np.ndarray] | None = None,
) -> FilterReport:
    """Score each ``{"passage_id", "query"}`` pair with the models, then :func:`apply_filters`.

    Args:
        pairs: Synthetic pairs (e.g. the lines :func:`~qwen3_rag.adapt.synthesize.synthesize`
            wrote); marked in place.
        passages: Passage id -> text.
        embedder: The embedding model (its instruction formats the queries).
        reranker: Scores each pair for the band filter; ``None``: no reranker.
        threshold: See :func:`apply_filters`.
        band: See :func:`apply_filters`.
        passage_vectors: Passage id -> the embedder's vector, when already computed.

    Returns:
        The :class:`FilterReport`.
    """
    if not pairs:
        return apply_filters(pairs, [], [] if reranker else None, threshold=threshold, band=band)
    queries = [str(p["query"]) for p in pairs]
    texts = [passages[str(p["passage_id"])] for p in pairs]
    q = embedder.embed_queries(queries)
    if passage_vectors is not None:
        d = np.stack([passage_vectors[str(p["passage_id"])] for p in pairs])
    else:
        d = embedder.embed_documents(texts)
    scores = (q * d).sum(axis=1).tolist()
    rr = reranker.score_pairs(list(zip(queries, texts, strict=True))) if reranker else None
    return apply_filters(pairs, scores, rr, threshold=threshold, band=band)
