"""The evaluation: every configuration searched, reranked, scored and tested against the first."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from qwen3_rag._extras import require
from qwen3_rag.embedder import Embedder
from qwen3_rag.evaluation.cache import VectorCache, default_cache_dir
from qwen3_rag.evaluation.collection import _Collection
from qwen3_rag.evaluation.data import Dataset
from qwen3_rag.evaluation.exact import (
    DEFAULT_BLOCK_SIZE,
    _run_from_search,
    _trec_sorted_ids,
    search,
)
from qwen3_rag.evaluation.metrics import (
    DEFAULT_METRICS,
    Run,
    _trec_order,
    paired_test,
    parse_metric,
    score_run,
)
from qwen3_rag.evaluation.plan import _embedder, _Plan, _plan, _Vectors
from qwen3_rag.evaluation.report import (
    Configuration,
    ConfigurationResult,
    Evaluation,
    _resolve,
    _slug,
    write_run,
)
from qwen3_rag.options import DEFAULT_RERANKER_MODEL, check_positive_int, progress_disabled
from qwen3_rag.reranker import Reranker

__all__ = ["evaluate"]

logger = logging.getLogger(__name__)


class _Exact:
    """Exact blocked search over the corpus matrix (one per model and document instruction)."""

    def __init__(self, data: Dataset, vectors: _Vectors, qids: list[str], block_size: int):
        self.data = data
        self.vectors = vectors
        self.qids = qids
        self.block_size = block_size
        self.doc_ids = _trec_sorted_ids(data.corpus)  # index order = trec_eval's tie order
        self.texts = [data.corpus[d] for d in self.doc_ids]
        self.description = "exact search"

    def text(self, candidate: str) -> str:
        return self.data.corpus[candidate]

    def candidates(self, plan: _Plan, queries: NDArray[np.float32], depth: int) -> Run:
        corpus = self.vectors.get(plan.embedder, self.texts, plan.doc_preset, "document")
        scores, index = search(
            queries,
            corpus,
            depth,
            dimensions=plan.truncation,
            block_size=self.block_size,
            # On the embedder's GPU when it has one; else (CPU, MPS) on the CPU.
            device=plan.embedder.device if plan.embedder.device.type == "cuda" else None,
        )
        return _run_from_search(self.qids, self.doc_ids, scores, index)

    def fold(self, run: Run) -> Run:
        return run


def _rerank(
    plan: _Plan,
    candidates: Run,
    text: Callable[[str], str],
    queries: Mapping[str, str],
    reranker: Reranker,
    memo: dict[tuple[str, str, str, str], float],
    progress: bool | None,
) -> Run:
    """Score every candidate with the reranker (scores shared across configurations)."""
    instruction = plan.config.rerank_instruction
    if instruction is None:
        instruction = plan.query_preset  # None: the reranker's own
    resolved = _resolve(instruction, None) if instruction is not None else None
    if plan.config.long_documents not in (None, reranker.options.long_documents):
        reranker = Reranker.from_options(
            reranker.options.replace(long_documents=plan.config.long_documents)
        )  # the same loaded model, another reading of long candidates
    tag = f"{reranker.options.long_documents}\0" + (
        resolved.instruction if resolved is not None else reranker.instruction
    )
    todo = sum(
        1
        for q, cands in candidates.items()
        for c, _ in cands
        if (reranker.model, tag, q, c) not in memo
    )
    with tqdm(
        total=todo, desc="Reranking", unit="pair", disable=progress_disabled(progress)
    ) as bar:
        for qid, cands in candidates.items():
            missing = [c for c, _ in cands if (reranker.model, tag, qid, c) not in memo]
            if not missing:
                continue
            scores = reranker.score(
                queries[qid], [text(c) for c in missing], instruction=resolved or None
            )
            for c, s in zip(missing, scores, strict=True):
                memo[(reranker.model, tag, qid, c)] = s
            bar.update(len(missing))
    return {
        qid: _trec_order((c, memo[(reranker.model, tag, qid, c)]) for c, _ in cands)
        for qid, cands in candidates.items()
    }


def evaluate(
    data: Dataset,
    configurations: Sequence[Configuration] | None = None,
    *,
    embedder: str | os.PathLike[str] | Embedder | None = None,
    reranker: str | os.PathLike[str] | Reranker | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    k: int | None = None,
    collection: Any = None,
    id_key: str | None = None,
    cache: VectorCache | str | os.PathLike[str] | Literal[False] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    runs_dir: str | os.PathLike[str] | None = None,
    test: Literal["permutation", "t-test"] = "permutation",
    alpha: float = 0.05,
    show_progress: bool | None = False,
) -> Evaluation:
    """Evaluate retrieval configurations on a dataset, each tested against the first.

    Args:
        data: The dataset (:func:`load_beir` or :meth:`Dataset.from_dicts`).
        configurations: What to compare; default one configuration with the embedder's own
            settings. The first is the baseline of the significance tests.
        embedder: The embedding model: an :class:`~qwen3_rag.Embedder`, a hub id or a folder
            (default ``Qwen/Qwen3-Embedding-0.6B``; for a ``collection``, the model it was
            indexed with). Its device, dtype and batch settings are used; vectors are always
            computed at full size and cut to each configuration's size.
        reranker: The reranker of the configurations with ``rerank=True``: a
            :class:`~qwen3_rag.Reranker`, a hub id or a folder (default
            ``Qwen/Qwen3-Reranker-0.6B``, on the embedder's device and dtype).
        metrics: Metric names: ``nDCG@k``, ``Recall@k``, ``MAP@k``, ``MRR@k``, ``P@k``.
        k: Results kept per query (the run depth); default the largest metric cutoff.
        collection: A chromadb collection made by ``qwen3-rag index`` or with
            :class:`~qwen3_rag.chroma.Qwen3EmbeddingFunction`: query it (HNSW, what you run
            in production) instead of searching exactly. Its persisted model, dimensions and
            instruction are the defaults; its documents are what the reranker reads.
        id_key: For a ``collection``, how records map to corpus ids: ``None`` (default) when
            the record ids are the corpus ``_id`` values (a collection built from the corpus
            with ``add(ids=..., documents=...)``); else the metadata key that holds the corpus
            id, e.g. ``"doc_id"``, or ``"source"`` for a ``qwen3-rag index`` collection (the
            file path as ``qwen3-rag query`` prints it: relative to the working directory when
            under it, else absolute). ``k`` and ``fetch_k`` count documents: records (chunks)
            are fetched until that many distinct documents are covered, the reranker scores
            every fetched chunk, and each document counts once, at its best chunk.
        cache: Where vectors are cached: a :class:`VectorCache`, a folder, ``None`` for
            :func:`default_cache_dir`, or ``False`` for no disk cache.
        block_size: Documents per block of the exact search (bounds memory).
        runs_dir: Write each configuration's run there as a TREC run file
            (``<name>.trec``).
        test: The paired significance test, see :func:`paired_test`.
        alpha: Significance level of the table's ``+``/``-`` markers.
        show_progress: Progress bars while embedding, querying and reranking; ``None``: only
            when stderr is a terminal.

    Returns:
        The :class:`Evaluation`: ``.table()``, ``.to_dict()``, per-query values and runs.

    Raises:
        ValueError: On a bad argument or configuration (``fetch_k < k``, dimensions out of
            range, a collection whose records match no corpus id ...), named in the message.
        ImportError: Without the ``eval`` extra (``pip install "qwen3-rag[eval]"``).

    Example:
        >>> from qwen3_rag.evaluation import Configuration, evaluate, load_beir
        >>> data = load_beir("datasets/scifact")  # doctest: +SKIP
        >>> report = evaluate(
        ...     data,
        ...     [
        ...         Configuration(instruction="web_search"),
        ...         Configuration(instruction="fact_checking"),
        ...         Configuration(instruction="fact_checking", dimensions=256),
        ...         Configuration(instruction="fact_checking", rerank=True, fetch_k=100),
        ...     ],
        ...     embedder="Qwen/Qwen3-Embedding-0.6B",
        ...     reranker="Qwen/Qwen3-Reranker-0.6B",
        ...     runs_dir="runs",
        ... )  # doctest: +SKIP
        >>> print(report.table())  # doctest: +SKIP
    """
    require("pytrec_eval", "eval", "qwen3_rag.evaluation")
    require("scipy.stats", "eval", "qwen3_rag.evaluation")
    if not isinstance(data, Dataset):
        raise TypeError(
            f"data must be a Dataset (load_beir, Dataset.from_dicts), not {type(data).__name__}"
        )
    if isinstance(metrics, str):
        raise TypeError("metrics must be a list of names, e.g. ['nDCG@10'], not a str")
    parsed = [parse_metric(m) for m in metrics]
    if not parsed:
        raise ValueError("metrics is empty: name at least one, e.g. 'nDCG@10'")
    names = list(dict.fromkeys(m.name for m in parsed))
    depth = max(m.k for m in parsed) if k is None else k
    check_positive_int(depth, "k")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if test not in ("permutation", "t-test"):
        raise ValueError(f"test must be 'permutation' or 't-test', not {test!r}")
    beyond = [m.name for m in parsed if m.k > depth]
    if beyond:
        logger.warning(
            "%s look beyond k=%d: they are computed on %d results per query",
            ", ".join(beyond),
            depth,
            depth,
        )
    configs = list(configurations) if configurations is not None else [Configuration()]
    if not configs:
        raise ValueError("configurations is empty: give at least one Configuration")

    store: VectorCache | None
    if cache is False:
        store = None
    elif isinstance(cache, VectorCache):
        store = cache
    else:
        store = VectorCache(cache if cache is not None else default_cache_dir())
    vectors = _Vectors(store, show_progress)
    qids = list(data.queries)
    query_texts = [data.queries[q] for q in qids]

    searcher: _Exact | _Collection
    if collection is not None:
        searcher = _Collection(collection, data, id_key, qids, show_progress)
        base = searcher.embedder(embedder)
        plans = _plan(configs, base, depth, (searcher.dimensions, searcher.preset))
    else:
        if id_key is not None:
            raise ValueError("id_key applies only to a Chroma collection (collection=...)")
        base = _embedder(embedder, None)
        plans = _plan(configs, base, depth, None)
        searcher = _Exact(data, vectors, qids, block_size)
    the_reranker: Reranker | None = None
    if any(p.config.rerank for p in plans):
        if isinstance(reranker, Reranker):
            the_reranker = reranker
        else:
            the_reranker = Reranker(
                os.fspath(reranker) if reranker is not None else DEFAULT_RERANKER_MODEL,
                device=base.device,
                dtype=base.dtype,
            )

    memo: dict[tuple[str, str, str, str], float] = {}
    results: list[ConfigurationResult] = []
    for plan in plans:
        q_vectors = vectors.get(plan.embedder, query_texts, plan.query_preset, "query")
        run = searcher.candidates(plan, q_vectors, plan.fetch_k)
        if plan.config.rerank:
            if the_reranker is None:  # made above whenever a configuration reranks
                raise RuntimeError(f"{plan.name}: reranks, but no reranker was made")
            run = _rerank(plan, run, searcher.text, data.queries, the_reranker, memo, show_progress)
        run = {q: ranked[:depth] for q, ranked in searcher.fold(run).items()}
        per_query = score_run(data.qrels, run, parsed)
        means = {m: float(np.mean([per_query[m][q] for q in qids])) for m in names}
        p_values: dict[str, float] = {}
        if results:
            first = results[0].per_query
            for m in names:
                p_values[m] = paired_test(
                    [first[m][q] for q in qids], [per_query[m][q] for q in qids], method=test
                )
        settings = {
            "model": plan.embedder.model,
            "instruction": plan.query_preset.instruction if plan.query_preset else None,
            "document_instruction": plan.doc_preset.instruction if plan.doc_preset else None,
            "dimensions": plan.dimensions,
            "rerank": plan.config.rerank,
            "fetch_k": plan.fetch_k if plan.config.rerank else None,
            "reranker": the_reranker.model if plan.config.rerank and the_reranker else None,
            "long_documents": (plan.config.long_documents or the_reranker.options.long_documents)
            if plan.config.rerank and the_reranker
            else None,
        }
        results.append(
            ConfigurationResult(plan.name, plan.config, means, per_query, p_values, run, settings)
        )
        if runs_dir is not None:
            write_run(Path(runs_dir) / f"{_slug(plan.name)}.trec", run, plan.name)
    return Evaluation(
        results=results,
        metrics=names,
        k=depth,
        dataset=data.name,
        split=data.split,
        queries=len(qids),
        documents=len(data.corpus),
        search=searcher.description,
        test=test,
        alpha=alpha,
    )
