"""Retrieval evaluation: which instruction, Matryoshka size or reranking depth works on *your* data.

Give it a BEIR-format folder (or three dicts) and a few configurations; it embeds the corpus
once, searches it exactly (or queries a real Chroma collection), optionally reranks, scores
every run with ``trec_eval`` (through ``pytrec-eval-terrier``) and tests every configuration
against the first one with a paired significance test.

Reuse, never recompute:

* documents are embedded once per model, at full size; every Matryoshka size is derived from
  those vectors (keep the first ``d`` values, then L2-renormalise: exactly what
  ``Embedder(dimensions=d)`` computes), and instruction variants re-embed only the queries.
  Symmetric presets (``PRESETS[name].symmetric``) instruct documents too, so they get their own
  document vectors (logged);
* vectors are cached on disk (:class:`VectorCache`), keyed by the model (folder or hub id,
  revision, weights), dtype, quantization, ``max_length`` and a hash of the exact text the
  model reads (instruction included), so a second run, or a before/after comparison, embeds
  only what changed;
* reranker scores are shared by every configuration of one call that reranks the same
  candidate with the same instruction.

Search is exact: a blocked matmul and top-k (:func:`search`), so memory is bounded by the
block size, never by queries x documents. Ties are broken the way ``trec_eval`` breaks them
(higher score first, then the document id in reverse byte order), so the ranks in the run
files, the metrics reported here and ``trec_eval`` run on those files all agree.

Metrics come from ``pytrec_eval`` (``trec_eval`` itself, what BEIR and MTEB report): nDCG
with linear gains (the graded relevance as the gain), Recall, MAP, precision, and MRR@k as
``trec_eval``'s ``recip_rank`` over each run cut to its first ``k`` results (``trec_eval`` has no
MRR cutoff). Install the extra: ``pip install "qwen3-rag[eval]"``.

Example:
    >>> from qwen3_rag.evaluation import Configuration, Dataset, evaluate
    >>> data = Dataset.from_dicts(
    ...     corpus={"d1": "Beijing is the capital of China.", "d2": "Gravity attracts bodies."},
    ...     queries={"q1": "capital of China?"},
    ...     qrels={"q1": {"d1": 1}},
    ... )
    >>> report = evaluate(
    ...     data,
    ...     [Configuration(instruction="web_search"), Configuration(dimensions=256)],
    ...     embedder="Qwen/Qwen3-Embedding-0.6B",
    ... )  # doctest: +SKIP
    >>> print(report.table())  # doctest: +SKIP
"""

from __future__ import annotations

from qwen3_rag.evaluation.cache import VectorCache, default_cache_dir
from qwen3_rag.evaluation.collection import CHROMA_PAGE as CHROMA_PAGE
from qwen3_rag.evaluation.collection import CHROMA_QUERY_BATCH as CHROMA_QUERY_BATCH
from qwen3_rag.evaluation.data import Dataset, load_beir
from qwen3_rag.evaluation.exact import DEFAULT_BLOCK_SIZE as DEFAULT_BLOCK_SIZE
from qwen3_rag.evaluation.exact import QUERY_BLOCK as QUERY_BLOCK
from qwen3_rag.evaluation.exact import evaluate_vectors, search, truncate
from qwen3_rag.evaluation.metrics import (
    DEFAULT_METRICS,
    Metric,
    paired_test,
    parse_metric,
    score_run,
)
from qwen3_rag.evaluation.metrics import RESAMPLES as RESAMPLES
from qwen3_rag.evaluation.metrics import Run as Run
from qwen3_rag.evaluation.plan import EMBED_CHUNK as EMBED_CHUNK
from qwen3_rag.evaluation.report import Configuration, ConfigurationResult, Evaluation, write_run
from qwen3_rag.evaluation.run import evaluate

__all__ = [
    "DEFAULT_METRICS",
    "Configuration",
    "ConfigurationResult",
    "Dataset",
    "Evaluation",
    "Metric",
    "VectorCache",
    "default_cache_dir",
    "evaluate",
    "evaluate_vectors",
    "load_beir",
    "paired_test",
    "parse_metric",
    "score_run",
    "search",
    "truncate",
    "write_run",
]
