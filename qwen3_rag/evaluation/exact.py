"""Exact search: a blocked matmul and top-k, ties broken the way ``trec_eval`` breaks them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from qwen3_rag.evaluation.metrics import DEFAULT_METRICS, Run, parse_metric, score_run
from qwen3_rag.options import check_positive_int

__all__ = ["DEFAULT_BLOCK_SIZE", "QUERY_BLOCK", "evaluate_vectors", "search", "truncate"]

#: Documents per block of the exact search: the score buffer holds ``1,024 x block_size``
#: floats (64 MiB at the default).
DEFAULT_BLOCK_SIZE = 16_384
#: Queries per block of the exact search.
QUERY_BLOCK = 1_024


def truncate(vectors: NDArray[np.float32], dimensions: int | None) -> NDArray[np.float32]:
    """Matryoshka vectors from full-size ones: the first ``dimensions`` values, L2-renormalised.

    This is exactly what ``Embedder(dimensions=d)`` computes (it truncates the pooled hidden
    state, then normalises; normalising first changes only the scale, which the second
    normalisation removes), up to float rounding (<= 1e-6).

    Args:
        vectors: ``(n, full size)`` float32 vectors.
        dimensions: Values to keep, or ``None`` to return ``vectors`` unchanged.

    Returns:
        ``(n, dimensions)`` float32, rows L2-normalised.

    Example:
        >>> import numpy as np
        >>> truncate(np.array([[0.6, 0.0, 0.8]], dtype=np.float32), 2)
        array([[1., 0.]], dtype=float32)
    """
    if dimensions is None or dimensions >= vectors.shape[1]:
        return vectors
    cut = torch.from_numpy(np.ascontiguousarray(vectors[:, :dimensions], dtype=np.float32))
    return torch.nn.functional.normalize(cut, p=2, dim=-1).numpy()


def _break_ties(
    vals: torch.Tensor, idx: torch.Tensor, priority: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows sorted by score descending: order equal scores by priority (default: index).

    Only rows that hold a tie are touched (sorting every row again would cost more than the
    search's top-k itself).
    """
    rows = (vals[:, 1:] == vals[:, :-1]).any(dim=1).nonzero().flatten()
    if len(rows):
        sub_v, sub_i = vals[rows], idx[rows]
        key = sub_i if priority is None else priority[sub_i]
        by_key = key.argsort(dim=1)
        sub_v, sub_i = sub_v.gather(1, by_key), sub_i.gather(1, by_key)
        by_score = sub_v.sort(dim=1, descending=True, stable=True).indices
        vals[rows], idx[rows] = sub_v.gather(1, by_score), sub_i.gather(1, by_score)
    return vals, idx


def _block_top(
    scores: torch.Tensor, k: int, offset: int, priority: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact first ``k`` documents of a block per row: (score desc, priority asc).

    Returns the scores and the corpus indices (``offset`` + column).
    """
    n = scores.shape[1]
    if n <= k:
        vals, idx = scores.sort(dim=1, descending=True, stable=True)
        return _break_ties(vals, idx + offset, priority)
    vals, idx = scores.topk(k + 1, dim=1)  # sorted, best first
    vals, idx = _break_ties(vals, idx + offset, priority)
    tied = (vals[:, k - 1] == vals[:, k]).nonzero().flatten().tolist()
    for r in tied:  # a tie across the cut: the tied documents of lowest priority win
        row = scores[r]
        cand = (row >= vals[r, k - 1]).nonzero().flatten() + offset
        key = cand if priority is None else priority[cand]
        cand = cand[key.argsort()]
        cand_vals = row[cand - offset]
        order = cand_vals.sort(descending=True, stable=True).indices[:k]
        vals[r, :k], idx[r, :k] = cand_vals[order], cand[order]
    return vals[:, :k], idx[:, :k]


def _merge(
    kept: tuple[torch.Tensor, torch.Tensor],
    new: tuple[torch.Tensor, torch.Tensor],
    k: int,
    priority: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge two per-row rankings (each best first) into the first ``k``."""
    vals, idx = torch.cat([kept[0], new[0]], 1), torch.cat([kept[1], new[1]], 1)
    order = vals.sort(dim=1, descending=True, stable=True).indices  # two sorted runs: cheap
    vals, idx = _break_ties(vals.gather(1, order), idx.gather(1, order), priority)
    return vals[:, :k], idx[:, :k]


def search(
    queries: NDArray[np.float32],
    corpus: NDArray[np.float32],
    k: int,
    *,
    dimensions: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: str | torch.device | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Exact top-``k`` by dot product, in blocks of documents: memory stays bounded.

    The score buffer holds at most ``1,024 x block_size`` floats whatever the corpus size;
    each block's top ``k`` is merged into a running top ``k``. The order is deterministic:
    higher score first, ties by lower corpus index (also across blocks and at the cut).

    Args:
        queries: ``(m, d)`` float32 query vectors.
        corpus: ``(n, d)`` float32 document vectors (a NumPy memmap works: blocks are read
            as needed).
        k: Results per query (``min(k, n)`` are returned).
        dimensions: Compare Matryoshka vectors of this size (both sides truncated and
            renormalised block by block, see :func:`truncate`); ``None`` uses them as given.
        block_size: Documents per block.
        device: Where to compute (``None``: CPU). Blocks are moved there one at a time.

    Returns:
        ``(scores, indices)``, both ``(m, min(k, n))``, best first.

    Raises:
        ValueError: On mismatched shapes, a non-positive ``k``/``block_size``, or
            non-finite vectors.

    Example:
        >>> import numpy as np
        >>> docs = np.eye(3, dtype=np.float32)
        >>> scores, idx = search(docs[[2]], docs, k=2)
        >>> idx.tolist(), scores.tolist()
        ([[2, 0]], [[1.0, 0.0]])
    """
    if queries.ndim != 2 or corpus.ndim != 2 or queries.shape[1] != corpus.shape[1]:
        raise ValueError(
            f"queries {queries.shape} and corpus {corpus.shape} must be 2-D with equal widths"
        )
    check_positive_int(k, "k")
    check_positive_int(block_size, "block_size")
    if not np.isfinite(queries).all():
        raise ValueError("queries hold NaN or infinite values")
    return _search(queries, corpus, k, dimensions, block_size, device, None)


def _search(
    queries: NDArray[np.float32],
    corpus: NDArray[np.float32],
    k: int,
    dimensions: int | None,
    block_size: int,
    device: str | torch.device | None,
    priority: NDArray[np.int64] | None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """:func:`search`, ties going to the lowest ``priority`` (default: the lowest index)."""
    target = torch.device(device) if device is not None else torch.device("cpu")
    m, n = len(queries), len(corpus)
    top = min(k, n)
    out_scores = np.empty((m, top), dtype=np.float32)
    out_index = np.empty((m, top), dtype=np.int64)
    if not m or not top:
        return out_scores, out_index
    q_all = torch.from_numpy(truncate(np.ascontiguousarray(queries, np.float32), dimensions))
    q_all = q_all.to(target)
    ranks = None if priority is None else torch.from_numpy(priority).to(target)
    groups = range(0, m, QUERY_BLOCK)
    best: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(groups)
    buffer = torch.empty((min(QUERY_BLOCK, m), min(block_size, n)), device=target)
    with torch.inference_mode():
        for d0 in range(0, n, block_size):
            chunk = np.ascontiguousarray(corpus[d0 : d0 + block_size], np.float32)
            docs = torch.from_numpy(truncate(chunk, dimensions)).to(target)
            # One sum finds NaN/inf (it would overflow only for absurdly large vectors, where
            # the exact check below decides).
            if not math.isfinite(float(docs.sum())) and not bool(torch.isfinite(docs).all()):
                raise ValueError(f"corpus rows {d0}..{d0 + len(docs) - 1} hold NaN or inf")
            for g, q0 in enumerate(groups):
                q = q_all[q0 : q0 + QUERY_BLOCK]
                scores = buffer[: len(q), : len(docs)]
                torch.matmul(q, docs.T, out=scores)
                vals, idx = _block_top(scores, top, d0, ranks)
                kept = best[g]
                best[g] = (vals, idx) if kept is None else _merge(kept, (vals, idx), top, ranks)
        for g, q0 in enumerate(groups):
            kept = best[g]
            if kept is None:  # every group meets every block of a non-empty corpus
                raise RuntimeError(f"query block {g} met no corpus block")
            out_scores[q0 : q0 + len(kept[0])] = kept[0].cpu().numpy()
            out_index[q0 : q0 + len(kept[0])] = kept[1].cpu().numpy()
    return out_scores, out_index


def _trec_sorted_ids(ids: Iterable[str]) -> list[str]:
    """Ids in reverse byte order: lower index = ``trec_eval``'s tie winner."""
    return sorted(ids, key=lambda s: s.encode("utf-8"), reverse=True)


def _run_from_search(
    qids: Sequence[str],
    doc_ids: Sequence[str],
    scores: NDArray[np.float32],
    index: NDArray[np.int64],
) -> Run:
    run: Run = {}
    for qid, row_s, row_i in zip(qids, scores.tolist(), index.tolist(), strict=True):
        run[qid] = [(doc_ids[i], s) for i, s in zip(row_i, row_s, strict=True)]
    return run


def evaluate_vectors(
    query_vectors: NDArray[np.float32],
    doc_vectors: NDArray[np.float32],
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    k: int | None = None,
    dimensions: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[Run, dict[str, dict[str, float]]]:
    """Exact search + metrics over vectors you already have (no model involved).

    Args:
        query_vectors: ``(m, d)`` float32, L2-normalised.
        doc_vectors: ``(n, d)`` float32, L2-normalised.
        query_ids: The ``m`` query ids.
        doc_ids: The ``n`` document ids.
        qrels: Query id -> document id -> grade.
        metrics: Metric names.
        k: Results per query; default the largest metric cutoff.
        dimensions: Matryoshka size to compare at (``None``: as given).
        block_size: Documents per search block.

    Returns:
        ``(run, per-query values)``, as :func:`score_run` gives them. Ties are broken as
        ``trec_eval`` breaks them (document id in reverse byte order).

    Example:
        >>> import numpy as np
        >>> v = np.eye(2, dtype=np.float32)
        >>> run, values = evaluate_vectors(v, v, ["q1", "q2"], ["a", "b"],
        ...                                {"q1": {"a": 1}, "q2": {"a": 1}}, metrics=["MRR@10"])
        >>> values["MRR@10"]
        {'q1': 1.0, 'q2': 0.5}
    """
    parsed = [parse_metric(m) for m in metrics]
    depth = k if k is not None else max(m.k for m in parsed)
    if len(doc_ids) != len(doc_vectors) or len(query_ids) != len(query_vectors):
        raise ValueError("query_ids/doc_ids must have one id per vector row")
    check_positive_int(depth, "k")
    check_positive_int(block_size, "block_size")
    if (
        query_vectors.ndim != 2
        or doc_vectors.ndim != 2
        or query_vectors.shape[1] != doc_vectors.shape[1]
    ):
        raise ValueError(
            f"query_vectors {query_vectors.shape} and doc_vectors {doc_vectors.shape} must be "
            f"2-D with equal widths"
        )
    if not np.isfinite(query_vectors).all():
        raise ValueError("query_vectors hold NaN or infinite values")
    # Ties go to the higher id (trec_eval's order): a priority per row, no reordered copy.
    order = sorted(range(len(doc_ids)), key=lambda i: doc_ids[i].encode("utf-8"), reverse=True)
    priority = np.empty(len(doc_ids), dtype=np.int64)
    priority[np.asarray(order, dtype=np.int64)] = np.arange(len(doc_ids), dtype=np.int64)
    scores, index = _search(
        query_vectors, doc_vectors, depth, dimensions, block_size, None, priority
    )
    run = _run_from_search(list(query_ids), list(doc_ids), scores, index)
    return run, score_run(qrels, run, parsed)
