"""Hard negatives: passages the current model ranks high for a query, but that are not its own.

For each query, the pool (the passages training may see) is searched exactly with the
current embedding model. Candidates are taken best first, skipping

* the positive itself (and any passage with the same text),
* candidates scoring within ``margin`` of the positive, or above it: likely unlabelled
  positives (false negatives) rather than negatives,
* optionally, candidates the reranker judges relevant (P(yes) >= ``rerank_max``),

until ``k`` are found. A query left short (a tiny pool) gets random passages from the pool
to reach ``k``, counted in the report.

Example:
    >>> import numpy as np
    >>> from qwen3_rag.adapt.mine import mine_negatives
    >>> pool = np.eye(4, dtype=np.float32)
    >>> q = np.array([[0.9, 0.4, 0.2, 0.0]], dtype=np.float32)
    >>> negatives, report = mine_negatives(
    ...     q, ["p0"], q @ pool[0:1].T[:, 0], ["p0", "p1", "p2", "p3"], pool, k=2, margin=0.1
    ... )
    >>> [n for n, _, _ in negatives[0]], report.skipped_margin
    (['p1', 'p2'], 0)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from qwen3_rag.options import check_positive_int, progress_disabled
from qwen3_rag.reranker import Reranker

__all__ = ["MiningReport", "Negative", "mine_negatives"]

logger = logging.getLogger(__name__)

#: Queries searched per block (bounds the score buffer to ``block x pool`` floats).
QUERY_BLOCK = 256

Negative = tuple[str, float, float | None]
"""A mined negative: ``(passage id, embedding score, reranker score or None)``."""


@dataclass
class MiningReport:
    """What :func:`mine_negatives` did.

    Attributes:
        queries: Queries mined for.
        k: Negatives per query.
        skipped_margin: Candidates skipped for scoring within ``margin`` of the positive.
        skipped_reranker: Candidates skipped because the reranker judged them relevant.
        filled_random: Random pool passages added where too few negatives were found.
        margin: The margin used.
        rerank_max: The reranker bound used (``None``: no reranker check).
    """

    queries: int = 0
    k: int = 0
    skipped_margin: int = 0
    skipped_reranker: int = 0
    filled_random: int = 0
    margin: float = 0.0
    rerank_max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The counts as plain data."""
        return dict(self.__dict__)


def mine_negatives(
    query_vectors: np.ndarray,
    positive_ids: Sequence[str],
    positive_scores: Sequence[float] | np.ndarray,
    pool_ids: Sequence[str],
    pool_vectors: np.ndarray,
    *,
    k: int = 3,
    margin: float = 0.05,
    depth: int | None = None,
    reranker: Reranker | None = None,
    queries: Sequence[str] | None = None,
    texts: Mapping[str, str] | None = None,
    rerank_max: float = 0.5,
    seed: int = 0,
    show_progress: bool | None = False,
) -> tuple[list[list[Negative]], MiningReport]:
    """Mine ``k`` hard negatives per query from a pool of passages.

    Args:
        query_vectors: ``(queries, dim)`` query vectors (L2-normalised, instruction applied).
        positive_ids: Each query's positive passage id.
        positive_scores: Each query's score with its positive.
        pool_ids: The passages negatives may come from.
        pool_vectors: ``(pool, dim)`` their vectors.
        k: Negatives per query.
        margin: Skip candidates scoring above ``positive score - margin``.
        depth: Candidates looked at per query (default ``4 * k + 10``).
        reranker: Also skip candidates this reranker scores ``>= rerank_max`` (needs
            ``queries`` and ``texts``); it scores at most ``2 * k`` candidates per query.
        queries: Query texts (for the reranker).
        texts: Passage id -> text: for the reranker, and to skip passages whose text equals
            the positive's.
        rerank_max: See ``reranker``.
        seed: Seeds the random fill.
        show_progress: A progress bar over the queries.

    Returns:
        ``(negatives per query, report)``; each negative is ``(id, embedding score,
        reranker score or None)``, best embedding score first, random fills last.

    Raises:
        ValueError: If the pool has fewer than ``k + 1`` passages or the inputs disagree in
            length.
    """
    check_positive_int(k, "k")
    n = len(positive_ids)
    if query_vectors.shape[0] != n or len(positive_scores) != n:
        raise ValueError(
            "query_vectors, positive_ids and positive_scores must have one row per query"
        )
    if pool_vectors.shape[0] != len(pool_ids):
        raise ValueError("pool_vectors must have one row per pool id")
    if len(pool_ids) < k + 1:
        raise ValueError(
            f"the pool has {len(pool_ids)} passages: mining {k} negatives needs at least {k + 1}"
        )
    if reranker is not None and (queries is None or texts is None):
        raise ValueError("the reranker check needs the query texts and the passage texts")
    depth = min(len(pool_ids), depth if depth is not None else 4 * k + 10)
    report = MiningReport(
        queries=n, k=k, margin=margin, rerank_max=rerank_max if reranker else None
    )
    miner = _Miner(
        list(positive_ids),
        [float(s) for s in positive_scores],
        list(pool_ids),
        k,
        margin,
        reranker,
        queries,
        texts,
        rerank_max,
        random.Random(seed),
        report,
    )
    out: list[list[Negative]] = []
    pool = np.ascontiguousarray(pool_vectors, dtype=np.float32)
    with tqdm(
        total=n, desc="Mining negatives", unit="query", disable=progress_disabled(show_progress)
    ) as bar:
        for start in range(0, n, QUERY_BLOCK):
            block = np.asarray(query_vectors[start : start + QUERY_BLOCK], dtype=np.float32)
            scores = block @ pool.T
            top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
            for row in range(block.shape[0]):
                order = top[row][np.argsort(-scores[row, top[row]], kind="stable")]
                out.append(miner.pick(start + row, order, scores[row]))
            bar.update(block.shape[0])
    return out, report


@dataclass
class _Miner:
    positive_ids: list[str]
    positive_scores: list[float]
    pool_ids: list[str]
    k: int
    margin: float
    reranker: Reranker | None
    queries: Sequence[str] | None
    texts: Mapping[str, str] | None
    rerank_max: float
    rng: random.Random
    report: MiningReport

    def _duplicate(self, pid: str, positive: str) -> bool:
        """Whether ``pid`` is the positive or has the positive's text."""
        if pid == positive:
            return True
        return self.texts is not None and self.texts.get(pid) == self.texts.get(positive)

    def pick(self, i: int, order: np.ndarray, scores: np.ndarray) -> list[Negative]:
        """The negatives of query ``i``, from its candidates ``order`` (best first)."""
        positive = self.positive_ids[i]
        limit = self.positive_scores[i] - self.margin
        candidates: list[tuple[str, float]] = []
        for j in order.tolist():
            pid = self.pool_ids[j]
            if self._duplicate(pid, positive):
                continue
            if float(scores[j]) > limit:
                self.report.skipped_margin += 1
                continue
            candidates.append((pid, float(scores[j])))
        chosen: list[Negative] = []
        if self.reranker is not None and self.queries is not None and self.texts is not None:
            head = candidates[: 2 * self.k]
            rr = self.reranker.score(self.queries[i], [self.texts[p] for p, _ in head])
            for (pid, score), r in zip(head, rr, strict=True):
                if r >= self.rerank_max:
                    self.report.skipped_reranker += 1
                elif len(chosen) < self.k:
                    chosen.append((pid, score, float(r)))
        else:
            chosen = [(pid, score, None) for pid, score in candidates[: self.k]]
        if len(chosen) < self.k:
            taken = {pid for pid, _, _ in chosen}
            others = [
                j
                for j, pid in enumerate(self.pool_ids)
                if pid not in taken and not self._duplicate(pid, positive)
            ]
            for j in self.rng.sample(others, min(self.k - len(chosen), len(others))):
                chosen.append((self.pool_ids[j], float(scores[j]), None))
                self.report.filled_random += 1
        return chosen
