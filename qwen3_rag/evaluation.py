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

import hashlib
import json
import logging
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm.auto import tqdm

from qwen3_rag._files import iter_jsonl, save_array, write_json, write_text
from qwen3_rag.embedder import Embedder
from qwen3_rag.instructions import PRESETS, Preset, format_query, resolve_instruction
from qwen3_rag.options import DEFAULT_EMBEDDING_MODEL, DEFAULT_RERANKER_MODEL, MIN_DIMENSIONS
from qwen3_rag.reranker import Reranker

if TYPE_CHECKING:
    from qwen3_rag.loading import ModelSource

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

logger = logging.getLogger(__name__)

#: The metrics reported when none are asked for (BEIR's and MTEB's headline numbers).
DEFAULT_METRICS: tuple[str, ...] = ("nDCG@10", "Recall@10", "Recall@100", "MRR@10", "MAP@100")
#: Documents per block of the exact search: the score buffer holds ``1,024 x block_size``
#: floats (64 MiB at the default).
DEFAULT_BLOCK_SIZE = 16_384
#: Queries per block of the exact search.
QUERY_BLOCK = 1_024
#: Texts embedded (and written to the cache) per step: an interrupted run keeps what it did.
EMBED_CHUNK = 2_048
#: Resamples of the paired randomisation test (exact enumeration below ``2**n`` of them).
RESAMPLES = 10_000

Run = dict[str, list[tuple[str, float]]]
"""A ranking per query id: ``(document id, score)`` pairs, best first."""

EXTRA_HINT = 'pip install "qwen3-rag[eval]"'


def _require(module: str) -> Any:
    """Import an optional dependency of the ``eval`` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"qwen3_rag.evaluation needs {module.split('.')[0]}: {EXTRA_HINT}"
        ) from exc


# -- data ------------------------------------------------------------------------------------


def _doc_text(value: Any, where: str) -> str:
    """A corpus entry as one string: ``title + " " + text``, stripped, as BEIR joins them."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        text = value.get("text")
        title = value.get("title")
        if not isinstance(text, str):
            raise TypeError(f"{where}: 'text' must be a string, not {type(text).__name__}")
        if title is None:
            return text.strip()
        if not isinstance(title, str):
            raise TypeError(f"{where}: 'title' must be a string, not {type(title).__name__}")
        return (title + " " + text).strip()
    raise TypeError(
        f"{where} must be a string or a {{'title', 'text'}} dict, not {type(value).__name__}"
    )


def _grade(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: relevance must be an integer, not {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{where}: relevance must be an integer, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class Dataset:
    """A retrieval test collection: documents, queries and relevance judgements (qrels).

    Build one with :func:`load_beir` (a BEIR folder) or :meth:`from_dicts`; both clean it the
    same way, so use them rather than the constructor.

    Attributes:
        corpus: Document id -> the text the model reads (BEIR's ``title`` and ``text`` joined
            with a space, stripped).
        queries: Query id -> text, only queries with at least one relevant document
            (grade >= 1, ``trec_eval``'s default relevance level).
        qrels: Query id -> document id -> relevance grade (graded relevance allowed; nDCG
            uses the grade as the gain).
        name: What to call it in reports (the folder, for :func:`load_beir`).
        split: The qrels split, for :func:`load_beir`.
        skipped_queries: Queries dropped because they have no relevant document in the qrels.
        ignored_qrels: Qrels rows dropped because they name an unknown query or document.

    Example:
        >>> data = Dataset.from_dicts(
        ...     corpus={"d1": {"title": "China", "text": "Beijing is the capital."},
        ...             "d2": "Gravity."},
        ...     queries={"q1": "capital of China?", "q2": "no judgements"},
        ...     qrels={"q1": {"d1": 2}},
        ... )
        >>> data.corpus["d1"], sorted(data.queries), data.skipped_queries
        ('China Beijing is the capital.', ['q1'], 1)
    """

    corpus: Mapping[str, str]
    queries: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]
    name: str = "dataset"
    split: str | None = None
    skipped_queries: int = 0
    ignored_qrels: int = 0

    @classmethod
    def from_dicts(
        cls,
        corpus: Mapping[str, Any],
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, Any]],
        *,
        name: str = "dataset",
        split: str | None = None,
    ) -> Dataset:
        """Build a dataset from in-memory dicts (BEIR's in-memory format works as is).

        Qrels rows that name an unknown query or document are ignored with a warning giving
        the count; queries with no relevant document are skipped (counted, logged).

        Args:
            corpus: Document id -> text, or -> ``{"title": ..., "text": ...}``.
            queries: Query id -> text.
            qrels: Query id -> document id -> integer relevance grade.
            name: What to call the dataset in reports.
            split: The split the qrels come from, if any.

        Returns:
            The cleaned dataset.

        Raises:
            ValueError: If the corpus is empty, or no query has a relevant document.
            TypeError: If an entry has the wrong type (the message names it).
        """
        docs = {str(i): _doc_text(v, f"corpus[{i!r}]") for i, v in corpus.items()}
        if not docs:
            raise ValueError(f"{name}: the corpus is empty: there is nothing to search")
        texts: dict[str, str] = {}
        for qid, text in queries.items():
            if not isinstance(text, str):
                raise TypeError(f"queries[{qid!r}] must be a string, not {type(text).__name__}")
            texts[str(qid)] = text
        unknown_docs: set[str] = set()
        unknown_queries: set[str] = set()
        ignored = 0
        judged: dict[str, dict[str, int]] = {}
        for qid, row in qrels.items():
            qid = str(qid)
            for did, grade in row.items():
                did = str(did)
                value = _grade(grade, f"qrels[{qid!r}][{did!r}]")
                if qid not in texts:
                    unknown_queries.add(qid)
                    ignored += 1
                elif did not in docs:
                    unknown_docs.add(did)
                    ignored += 1
                else:
                    judged.setdefault(qid, {})[did] = value
        if ignored:
            logger.warning(
                "%s: %d qrels rows ignored: they name %d unknown documents and %d unknown queries",
                name,
                ignored,
                len(unknown_docs),
                len(unknown_queries),
            )
        kept = {q: t for q, t in texts.items() if any(g >= 1 for g in judged.get(q, {}).values())}
        skipped = len(texts) - len(kept)
        if not kept:
            raise ValueError(
                f"{name}: no query has a relevant document in the qrels"
                + (f" of split {split!r}" if split else "")
                + f" ({len(texts)} queries, {sum(map(len, judged.values()))} usable qrels rows)"
            )
        if skipped:
            logger.info(
                "%s: %d of %d queries have no relevant document%s: skipped",
                name,
                skipped,
                len(texts),
                f" in split {split!r}" if split else "",
            )
        return cls(
            corpus=docs,
            queries=kept,
            qrels={q: judged[q] for q in kept},
            name=name,
            split=split,
            skipped_queries=skipped,
            ignored_qrels=ignored,
        )


def _records(path: Path, with_title: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in iter_jsonl(path):
        if "_id" not in value or not isinstance(value.get("text"), str):
            raise ValueError(f"{path}, line {number}: needs an '_id' and a 'text' string")
        key = str(value["_id"])
        if key in out:
            raise ValueError(f"{path}, line {number}: duplicate _id {key!r}")
        if with_title:
            title = value.get("title")
            out[key] = {"title": title if isinstance(title, str) else "", "text": value["text"]}
        else:
            out[key] = value["text"]
    return out


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    header = True  # the first non-empty line may be a header
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) != 3:
                parts = line.split()
            if len(parts) != 3:
                raise ValueError(
                    f"{path}, line {number}: expected 3 tab-separated columns "
                    "(query-id, corpus-id, score)"
                )
            try:
                grade = int(parts[2])
            except ValueError:
                if header:
                    header = False
                    continue  # the header line: query-id corpus-id score
                raise ValueError(
                    f"{path}, line {number}: score {parts[2]!r} is not an integer"
                ) from None
            header = False
            qrels.setdefault(parts[0].strip(), {})[parts[1].strip()] = grade
    return qrels


def load_beir(path: str | os.PathLike[str], split: str = "test") -> Dataset:
    """Load a BEIR-format folder.

    The folder holds ``corpus.jsonl`` (one JSON object per line: ``_id``, ``text`` and an
    optional ``title``), ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv``
    (tab-separated ``query-id corpus-id score`` with a header line; graded relevance
    allowed). Title and text are joined as BEIR does: ``(title + " " + text).strip()``.

    Args:
        path: The folder.
        split: Which qrels file to use (``test``, ``dev``, ``train`` ...).

    Returns:
        The dataset, cleaned like :meth:`Dataset.from_dicts` (unknown ids in the qrels warned
        about and ignored, queries without relevant documents skipped).

    Raises:
        FileNotFoundError: If the folder or one of its files is missing (the message names it).
        ValueError: On a malformed line (the message names the file and line), an empty
            corpus, or qrels with no usable row.

    Example:
        >>> data = load_beir("datasets/scifact", split="test")  # doctest: +SKIP
        >>> len(data.corpus), len(data.queries)  # doctest: +SKIP
        (5183, 300)
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (expected a BEIR dataset folder)")
    hint = "a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
    corpus_file, queries_file = root / "corpus.jsonl", root / "queries.jsonl"
    qrels_file = root / "qrels" / f"{split}.tsv"
    for needed in (corpus_file, queries_file):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed}: no such file ({hint})")
    if not qrels_file.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        have = f"this folder has: {', '.join(splits)}" if splits else hint
        raise FileNotFoundError(f"{qrels_file}: no such file (split {split!r}; {have})")
    corpus = _records(corpus_file, with_title=True)
    if not corpus:
        raise ValueError(f"{corpus_file}: the corpus is empty: there is nothing to search")
    return Dataset.from_dicts(
        corpus,
        _records(queries_file, with_title=False),
        _read_qrels(qrels_file),
        name=str(path),
        split=split,
    )


# -- metrics ---------------------------------------------------------------------------------

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
    pytrec_eval = _require("pytrec_eval")
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
    stats = _require("scipy.stats")
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


# -- vectors ---------------------------------------------------------------------------------


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


def default_cache_dir() -> Path:
    """Where vectors are cached by default: ``$XDG_CACHE_HOME/qwen3-rag/vectors``.

    ``~/.cache/qwen3-rag/vectors`` when ``XDG_CACHE_HOME`` is unset.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qwen3-rag" / "vectors"


def _weights_fingerprint(source: ModelSource) -> Any:
    """What identifies the weights beyond the name: a local folder's files, a hub snapshot."""
    if source.is_local:
        folder = Path(source.location)
        if not folder.is_dir():
            return None
        files = sorted(
            p
            for p in folder.iterdir()
            if p.suffix in {".safetensors", ".bin", ".json"} and p.is_file()
        )
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            source.model, "config.json", cache_dir=source.cache_dir, revision=source.revision
        )
    except Exception:  # an unusual hub setup: key on the revision alone
        return None
    return Path(found).parent.name if isinstance(found, str) else None


def _model_key(embedder: Embedder) -> dict[str, Any]:
    source = embedder.source
    return {
        "model": os.path.abspath(source.location) if source.is_local else source.model,
        "revision": source.revision,
        "weights": _weights_fingerprint(source),
        "dtype": str(embedder.dtype).removeprefix("torch."),
        "quantize": embedder.quantize,
        "max_length": embedder.max_length,
    }


def _text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class VectorCache:
    """Embedding vectors on disk, one folder per model setting, keyed by the exact input text.

    Layout: ``root/<key>/meta.json`` (the model, revision, weights fingerprint, dtype,
    quantization and ``max_length`` the folder is for) and shards ``<id>.vectors.npy``
    (float32, one full-size row per text) + ``<id>.keys.npy`` (the SHA-256 of each text as
    the model reads it, instruction included). Every file is written to a temporary name and
    renamed into place, the keys last, so an interrupted run leaves complete shards only: the
    next run reuses them and embeds the rest. Shards are never rewritten; unreadable ones are
    skipped with a warning (their texts are embedded again).

    Args:
        root: The cache folder (created on first write).

    Example:
        >>> cache = VectorCache("/tmp/qwen3-vectors")  # doctest: +SKIP
        >>> evaluate(data, cache=cache)  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"VectorCache({str(self.root)!r})"

    def folder(self, embedder: Embedder) -> Path:
        """The folder holding ``embedder``'s vectors (not created here)."""
        key = json.dumps(_model_key(embedder), sort_keys=True)
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:24]

    def fill(
        self,
        embedder: Embedder,
        hashes: Sequence[bytes],
        out: NDArray[np.float32],
        found: NDArray[np.bool_],
    ) -> None:
        """Copy the cached vectors of these texts into ``out``, marking them in ``found``.

        Args:
            embedder: Whose vectors (its model settings choose the folder).
            hashes: SHA-256 of each text, one per row of ``out``.
            out: ``(len(hashes), size)`` float32, written where a vector is cached.
            found: Booleans, one per row: rows already ``True`` are left alone, rows found
                here are set.
        """
        folder = self.folder(embedder)
        if not folder.is_dir():
            return
        wanted = {h: i for i, h in enumerate(hashes) if not found[i]}
        for keys_file in sorted(folder.glob("*.keys.npy")):
            if not wanted:
                return
            vectors_file = keys_file.with_name(keys_file.name.replace(".keys.", ".vectors."))
            try:
                keys = np.load(keys_file, allow_pickle=False)
                vectors = np.load(vectors_file, mmap_mode="r", allow_pickle=False)
                if (
                    keys.ndim != 2
                    or keys.shape[1] != 32
                    or vectors.shape
                    != (
                        len(keys),
                        out.shape[1],
                    )
                ):
                    raise ValueError("keys and vectors do not match")
            except (OSError, ValueError) as exc:
                logger.warning("ignoring unreadable cache shard %s: %s", keys_file, exc)
                continue
            raw = keys.astype(np.uint8).tobytes()
            source: list[int] = []
            target: list[int] = []
            for i in range(len(keys)):
                j = wanted.pop(raw[32 * i : 32 * i + 32], None)
                if j is not None:
                    source.append(i)
                    target.append(j)
            if source:  # one gather per shard: only these rows are read from disk
                out[target] = vectors[source]
                found[target] = True

    def store(
        self, embedder: Embedder, hashes: Sequence[bytes], vectors: NDArray[np.float32]
    ) -> None:
        """Add a shard (written atomically)."""
        if not len(hashes):
            return
        folder = self.folder(embedder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "meta.json"
        if not meta.exists():
            write_json(meta, _model_key(embedder), sort_keys=True)
        shard = uuid.uuid4().hex
        keys = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(hashes), 32)
        save_array(folder / f"{shard}.vectors.npy", np.ascontiguousarray(vectors, np.float32))
        save_array(folder / f"{shard}.keys.npy", keys)


# -- exact search ----------------------------------------------------------------------------


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
    for name, value in (("k", k), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
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
            assert kept is not None
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
    for name, value in (("k", depth), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
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


# -- configurations --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Configuration:
    """One retrieval setting to evaluate.

    Attributes:
        instruction: Query instruction: a preset name (``"web_search"``,
            ``"question_answering"`` ...), instruction text, a
            :class:`~qwen3_rag.instructions.Preset`, or ``""`` for raw queries; ``None`` uses
            the embedder's own (the collection's, for a Chroma collection). Symmetric presets
            instruct documents too (they get their own document vectors).
        dimensions: Matryoshka size (``32 <= dimensions <= hidden size``); ``None`` uses the
            embedder's own (its full size when it has none; the collection's, for Chroma).
        rerank: Rerank the vector search's first ``fetch_k`` results with the reranker and
            keep the best ``k``.
        fetch_k: Candidates handed to the reranker; ``None``: ``k``. Must be >= ``k``.
        rerank_instruction: The reranker's instruction; ``None``: the query instruction, or
            the reranker's own when queries are raw.
        model: Another embedding model for this configuration (a hub id, folder or
            :class:`~qwen3_rag.Embedder`), e.g. to compare a model before and after adaptation;
            ``None`` uses :func:`evaluate`'s ``embedder``.
        name: The row's name in reports; default built from the settings
            (``"question_answering d=256 +rerank@100"``).

    Example:
        >>> from qwen3_rag.evaluation import Configuration
        >>> baseline = Configuration(instruction="web_search")
        >>> smaller = Configuration(instruction="code_search", dimensions=256)
        >>> reranked = Configuration(instruction="code_search", rerank=True, fetch_k=100)
    """

    instruction: str | Preset | None = None
    dimensions: int | None = None
    rerank: bool = False
    fetch_k: int | None = None
    rerank_instruction: str | Preset | None = None
    model: str | os.PathLike[str] | Embedder | None = None
    name: str | None = None


def _label(
    plan_model: str | None, preset: Preset | None, dims: int | None, fetch_k: int | None
) -> str:
    """A row name built from the resolved settings: ``"code_search d=256 +rerank@100"``."""
    parts = [] if plan_model is None else [Path(plan_model).name]
    if preset is None:
        parts.append("no-instruction")
    elif PRESETS.get(preset.name) == preset:
        parts.append(preset.name)
    else:
        text = preset.instruction
        parts.append(f'"{text}"' if len(text) <= 24 else f'"{text[:23].rstrip()}…"')
    if dims is not None:
        parts.append(f"d={dims}")
    if fetch_k is not None:
        parts.append(f"+rerank@{fetch_k}")
    return " ".join(parts)


def _resolve(instruction: str | Preset | None, own: Preset | None) -> Preset | None:
    """The preset a configuration applies (``None``: raw text)."""
    if instruction is None:
        return own
    if isinstance(instruction, str) and not instruction.strip():
        return None
    return resolve_instruction(instruction)


@dataclass
class ConfigurationResult:
    """What one configuration scored.

    Attributes:
        name: The row's name.
        configuration: The configuration as given.
        metrics: Metric name -> mean over the queries.
        per_query: Metric name -> query id -> value (for your own analyses and tests).
        p_values: Metric name -> two-sided p-value against the first configuration (empty
            for the first).
        run: Query id -> ``(document id, score)`` pairs, best first.
        settings: What was actually run: model, instruction text, document instruction,
            dimensions, rerank, fetch_k.
    """

    name: str
    configuration: Configuration
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    p_values: dict[str, float]
    run: Run
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """The results of :func:`evaluate`: one :class:`ConfigurationResult` per configuration.

    Attributes:
        results: In the order the configurations were given; the first is the baseline of
            the significance tests.
        metrics: The metric names, in column order.
        k: Results per query in every run.
        dataset: The dataset's name; ``split`` its qrels split.
        split: The qrels split, if known.
        queries: Queries evaluated (those with a relevant document).
        documents: Documents in the corpus.
        search: ``"exact"`` or a description of the Chroma collection searched.
        test: The significance test (``"permutation"`` or ``"t-test"``).
        alpha: The significance level of the table's markers.
    """

    results: list[ConfigurationResult]
    metrics: list[str]
    k: int
    dataset: str
    split: str | None
    queries: int
    documents: int
    search: str
    test: str
    alpha: float

    def __getitem__(self, name: str) -> ConfigurationResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no configuration named {name!r}: {[r.name for r in self.results]}")

    def _metric(self, metric: str | None) -> str:
        name = parse_metric(metric).name if metric is not None else self.metrics[0]
        if name not in self.metrics:
            raise ValueError(f"metric {name!r} was not computed; this report has {self.metrics}")
        return name

    def best(self, metric: str | None = None) -> list[str]:
        """Names of the configurations with the highest mean ``metric`` (default: the first).

        Ties give several names.
        """
        name = self._metric(metric)
        top = max(r.metrics[name] for r in self.results)
        return [r.name for r in self.results if r.metrics[name] == top]

    def compare(self, a: str, b: str, metric: str | None = None) -> dict[str, Any]:
        """Configuration ``b`` against ``a`` on one metric, with the paired test.

        Args:
            a: Name of the reference configuration (e.g. the model before adaptation).
            b: Name of the configuration compared with it.
            metric: A computed metric; default the first (``nDCG@10`` by default).

        Returns:
            ``{"metric", "a", "b", "delta", "p_value", "significant"}``: the means, ``b - a``,
            the paired test's p-value and whether it is below ``alpha``.

        Raises:
            KeyError: If ``a`` or ``b`` names no configuration.
            ValueError: If ``metric`` was not computed.

        Example:
            >>> report.compare("base", "adapted")  # doctest: +SKIP
            {'metric': 'nDCG@10', 'a': 0.41, 'b': 0.47, 'delta': 0.06, 'p_value': 0.003, ...}
        """
        name = self._metric(metric)
        ra, rb = self[a], self[b]
        qids = list(ra.per_query[name])
        p = paired_test(
            [ra.per_query[name][q] for q in qids],
            [rb.per_query[name][q] for q in qids],
            method="t-test" if self.test == "t-test" else "permutation",
        )
        delta = rb.metrics[name] - ra.metrics[name]
        return {
            "metric": name,
            "a": ra.metrics[name],
            "b": rb.metrics[name],
            "delta": delta,
            "p_value": p,
            "significant": p < self.alpha,
        }

    def _marks(self, r: ConfigurationResult, metric: str) -> str:
        mark = "*" if r.name in self.best(metric) else ""
        p = r.p_values.get(metric)
        if p is not None and p < self.alpha:
            base = self.results[0].metrics[metric]
            mark += "+" if r.metrics[metric] > base else "-"
        return mark

    def table(self) -> str:
        """The results as a text table: configurations as rows, metrics as columns.

        ``*`` marks the best value of a column; ``+`` / ``-`` a value significantly better /
        worse than the first row's (paired test, p < ``alpha``); the last column gives the
        p-value of the first metric against the first row.
        """
        first = self.metrics[0]
        width = max(len("configuration"), *(len(r.name) for r in self.results))
        cols = [max(len(m), 8) for m in self.metrics]
        head = "  ".join(
            ["configuration".ljust(width)]
            + [m.ljust(c) for m, c in zip(self.metrics, cols, strict=True)]
            + [f"p({first})"]
        )
        lines = [head]
        for i, r in enumerate(self.results):
            cells = [r.name.ljust(width)]
            for m, c in zip(self.metrics, cols, strict=True):
                cells.append(f"{r.metrics[m]:.4f}{self._marks(r, m)}".ljust(c))
            cells.append("-" if i == 0 else _format_p(r.p_values[first]))
            lines.append("  ".join(cells).rstrip())
        what = "exact search" if self.search == "exact" else self.search
        split = f", split {self.split}" if self.split else ""
        test = "paired randomisation test" if self.test == "permutation" else "paired t-test"
        return "\n".join(
            [
                f"{self.dataset}{split}: {self.queries:,} queries, {self.documents:,} "
                f"documents, {what}, {self.k} results per query",
                *lines,
                f"* best in column; +/- better/worse than the first row "
                f"({test}, two-sided, p < {self.alpha:g})",
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """The same numbers as :meth:`table`, JSON-serialisable (what ``--json`` prints)."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "queries": self.queries,
            "documents": self.documents,
            "search": self.search,
            "k": self.k,
            "metrics": list(self.metrics),
            "significance": {
                "test": self.test,
                "alpha": self.alpha,
                "baseline": self.results[0].name,
            },
            "configurations": [
                {
                    "name": r.name,
                    **r.settings,
                    "metrics": dict(r.metrics),
                    "p_values": dict(r.p_values),
                    "best": [m for m in self.metrics if r.name in self.best(m)],
                    "better": [
                        m
                        for m in self.metrics
                        if r.p_values.get(m, 1.0) < self.alpha
                        and r.metrics[m] > self.results[0].metrics[m]
                    ],
                    "worse": [
                        m
                        for m in self.metrics
                        if r.p_values.get(m, 1.0) < self.alpha
                        and r.metrics[m] < self.results[0].metrics[m]
                    ],
                }
                for r in self.results
            ],
        }


def _format_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def write_run(
    path: str | os.PathLike[str], run: Mapping[str, Sequence[tuple[str, float]]], name: str
) -> Path:
    """Write a run in TREC format: ``qid Q0 docid rank score run_name`` per line.

    Scores are written exactly (``repr`` of the float), so ``trec_eval`` on the file orders
    ties the same way and computes the same numbers. The file is written to a temporary name
    and renamed into place.

    Args:
        path: The file to write.
        run: Query id -> ``(document id, score)`` pairs, best first.
        name: The run name (spaces become ``_``).

    Returns:
        The path written.

    Example:
        >>> write_run("runs/web_search.trec", report.results[0].run, "web_search")  # doctest: +SKIP
    """
    target = Path(path)
    tag = re.sub(r"\s+", "_", name.strip()) or "run"
    lines = (
        f"{qid} Q0 {did} {rank} {float(score)!r} {tag}\n"
        for qid, ranked in run.items()
        for rank, (did, score) in enumerate(ranked, start=1)
    )
    write_text(target, "".join(lines))
    return target


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@=+-]+", "_", name).strip("_") or "run"


def _no_bar(progress: bool | None) -> bool | None:
    """The ``disable`` argument of tqdm: ``None`` hides the bar unless stderr is a terminal."""
    return None if progress is None else not progress


# -- the evaluation --------------------------------------------------------------------------


def _full_size(embedder: Embedder) -> Embedder:
    """The same model and settings without Matryoshka truncation (vectors are cut later).

    It shares the loaded model with ``embedder`` (same model, device, dtype, quantization).
    """
    if embedder.dimensions is None:
        return embedder
    full: Embedder = type(embedder).from_options(embedder.options.replace(dimensions=None))
    return full


def _embedder(model: str | os.PathLike[str] | Embedder | None, like: Embedder | None) -> Embedder:
    """An :class:`Embedder` for ``model``, with the settings (device, dtype ...) of ``like``."""
    if isinstance(model, Embedder):
        return model
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"embedder must be a hub id, a folder or an Embedder, not {type(model).__name__}"
        )
    name = os.fspath(model) if model is not None else None
    if like is None:
        return Embedder(name or DEFAULT_EMBEDDING_MODEL)
    if name is None:
        return like
    made: Embedder = type(like).from_options(like.options.replace(model=name, revision=None))
    return made


class _Vectors:
    """Embeds each exact input text once per model: in memory, then through the disk cache."""

    def __init__(self, cache: VectorCache | None, progress: bool | None) -> None:
        self.cache = cache
        self.progress = progress
        # (model, applied instruction, side) -> (hashes, vectors) of the last request
        self.memory: dict[tuple[str, str, str], tuple[list[bytes], NDArray[np.float32]]] = {}

    def get(
        self,
        embedder: Embedder,
        texts: Sequence[str],
        preset: Preset | None,
        side: Literal["query", "document"],
    ) -> NDArray[np.float32]:
        """Full-size vectors of ``texts`` embedded as ``side`` under ``preset``, in order.

        Queries get the instruction; documents only when the preset is symmetric. Each vector
        is keyed by the hash of the exact string the model reads; equal texts are embedded
        once.
        """
        if side == "query":  # an asymmetric pair's queries: the query model's vectors
            embedder = embedder.query_side
        applied = preset if preset is not None and (side == "query" or preset.symmetric) else None
        exact = [format_query(applied.instruction, t) if applied else t for t in texts]
        hashes = [_text_hash(t) for t in exact]
        key = (
            json.dumps(_model_key(embedder), sort_keys=True),
            applied.instruction if applied else "",
            side,
        )
        known = self.memory.get(key)
        if known is not None and known[0] == hashes:
            return known[1]
        first: dict[bytes, int] = {}
        inverse = np.asarray([first.setdefault(h, len(first)) for h in hashes], dtype=np.int64)
        unique = list(first)
        raw = dict(zip(hashes, texts, strict=True))  # equal hashes: equal texts
        vectors = np.empty((len(unique), embedder.hidden_size), dtype=np.float32)
        found = np.zeros(len(unique), dtype=np.bool_)
        if self.cache is not None:
            self.cache.fill(embedder, unique, vectors, found)
        missing = np.flatnonzero(~found).tolist()
        if missing:
            self._embed(embedder, [(i, unique[i], raw[unique[i]]) for i in missing], applied,
                        side, vectors)  # fmt: skip
        out = vectors if len(unique) == len(hashes) else vectors[inverse]
        self.memory[key] = (hashes, out)
        return out

    def _embed(
        self,
        embedder: Embedder,
        todo: list[tuple[int, bytes, str]],
        applied: Preset | None,
        side: Literal["query", "document"],
        out: NDArray[np.float32],
    ) -> None:
        todo = sorted(todo, key=lambda x: len(x[2]))  # similar lengths batch well
        # "" is "no instruction" for the core: never rely on None meaning raw text.
        instruction: str | Preset = applied if applied is not None else ""
        label = "queries" if side == "query" else "documents"
        with tqdm(
            total=len(todo), desc=f"Embedding {label}", unit="text", disable=_no_bar(self.progress)
        ) as bar:
            for start in range(0, len(todo), EMBED_CHUNK):
                chunk = todo[start : start + EMBED_CHUNK]
                texts = [t for _, _, t in chunk]
                if side == "query":
                    vectors = embedder.embed_queries(texts, instruction=instruction)
                else:
                    vectors = embedder.embed_documents(texts, instruction=instruction)
                if self.cache is not None:  # written as we go: an interruption keeps them
                    self.cache.store(embedder, [h for _, h, _ in chunk], vectors)
                out[[i for i, _, _ in chunk]] = vectors
                bar.update(len(chunk))


@dataclass
class _Plan:
    """A configuration resolved against the models: what exactly to run."""

    config: Configuration
    name: str
    embedder: Embedder  # full size
    query_preset: Preset | None
    doc_preset: Preset | None  # applied to documents (symmetric presets only)
    dimensions: int  # the vector size compared
    fetch_k: int  # vector-search depth

    @property
    def truncation(self) -> int | None:
        """The Matryoshka size to derive, or ``None`` for the full vectors."""
        return None if self.dimensions >= self.embedder.hidden_size else self.dimensions


def _check_dimensions(where: str, dimensions: Any, embedder: Embedder) -> int:
    if isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise TypeError(f"{where}: dimensions must be an integer, not {dimensions!r}")
    hidden = embedder.hidden_size
    if not MIN_DIMENSIONS <= dimensions <= hidden:
        raise ValueError(
            f"{where}: dimensions={dimensions} is out of range for {embedder.model!r}: use "
            f"{MIN_DIMENSIONS} <= dimensions <= {hidden}"
        )
    return dimensions


def _plan(
    configurations: Sequence[Configuration],
    base: Embedder,
    k: int,
    collection: tuple[int, Preset | None] | None,
) -> list[_Plan]:
    """Check every configuration (before any model runs) and resolve its settings."""
    plans: list[_Plan] = []
    seen: dict[str, int] = {}
    for i, config in enumerate(configurations):
        where = f"configurations[{i}]"
        if not isinstance(config, Configuration):
            raise TypeError(f"{where} must be a Configuration, not {type(config).__name__}")
        given = base if config.model is None else _embedder(config.model, base)
        full = _full_size(given)
        if collection is not None:
            fixed, own = collection
            query_preset = _resolve(config.instruction, own)
            dims = fixed if config.dimensions is None else config.dimensions
            if dims != fixed:
                raise ValueError(
                    f"{where}: dimensions={dims}, but the collection holds {fixed}-dimensional "
                    f"vectors: leave dimensions unset"
                )
        else:
            query_preset = _resolve(config.instruction, given.preset)
            asked = config.dimensions if config.dimensions is not None else given.dimensions
            dims = full.hidden_size if asked is None else _check_dimensions(where, asked, full)
        fetch_k = k if config.fetch_k is None else config.fetch_k
        if isinstance(fetch_k, bool) or not isinstance(fetch_k, int) or fetch_k < 1:
            raise ValueError(f"{where}: fetch_k must be an integer >= 1, got {fetch_k!r}")
        if config.rerank and fetch_k < k:
            raise ValueError(
                f"{where}: fetch_k={fetch_k} is smaller than k={k}: the reranker must see at "
                f"least the k results it keeps"
            )
        name = config.name or _label(
            None if config.model is None else full.model,
            query_preset,
            dims if config.dimensions is not None or dims < full.hidden_size else None,
            fetch_k if config.rerank else None,
        )
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        symmetric = query_preset is not None and query_preset.symmetric
        if symmetric and collection is None:
            logger.info(
                "%s: the instruction is symmetric, so documents are embedded with it too "
                "(vectors of their own)",
                name,
            )
        plans.append(
            _Plan(
                config=config,
                name=name,
                embedder=full,
                query_preset=query_preset,
                doc_preset=query_preset if symmetric else None,
                dimensions=dims,
                fetch_k=fetch_k if config.rerank else k,
            )
        )
    return plans


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
    tag = resolved.instruction if resolved is not None else reranker.instruction
    todo = sum(
        1
        for q, cands in candidates.items()
        for c, _ in cands
        if (reranker.model, tag, q, c) not in memo
    )
    with tqdm(total=todo, desc="Reranking", unit="pair", disable=_no_bar(progress)) as bar:
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
    _require("pytrec_eval")
    _require("scipy.stats")
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
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
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
            assert the_reranker is not None
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


# -- Chroma collections ----------------------------------------------------------------------

CHROMA_PAGE = 5_000
#: Queries per ``collection.query`` call.
CHROMA_QUERY_BATCH = 256


def _display_path(path: str) -> str:
    """A path as ``qwen3-rag query`` prints it: relative to the working directory if under it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


class _Collection:
    """HNSW search through a Chroma collection; records (chunks) folded to corpus ids."""

    def __init__(
        self,
        collection: Any,
        data: Dataset,
        id_key: str | None,
        qids: list[str],
        progress: bool | None,
    ) -> None:
        try:
            from qwen3_rag.chroma import EMBEDDING_FUNCTION_NAME, Qwen3EmbeddingFunction
        except ImportError as exc:
            raise ImportError(
                'evaluating a Chroma collection needs chromadb: pip install "qwen3-rag[chroma]"'
            ) from exc
        self.collection = collection
        self.id_key = id_key
        self.qids = qids
        self.progress = progress
        name = getattr(collection, "name", "?")
        config = dict(collection.configuration_json or {})
        persisted = config.get("embedding_function") or {}
        if persisted.get("name") != EMBEDDING_FUNCTION_NAME:
            raise ValueError(
                f"collection {name!r} was not made by qwen3-rag (embedding function "
                f"{persisted.get('name')!r}): build it with `qwen3-rag index` or "
                f"Qwen3EmbeddingFunction"
            )
        function = Qwen3EmbeddingFunction.build_from_config(dict(persisted.get("config") or {}))
        self.own: Embedder = function.embedder
        self.preset = self.own.preset
        self.dimensions = self.own.dimension
        self.total = int(collection.count())
        if not self.total:
            raise ValueError(f"collection {name!r} is empty: index the corpus into it first")
        self.space = str((config.get("hnsw") or {}).get("space") or "l2")
        self.description = f"Chroma collection {name!r} (HNSW, {self.space})"
        self.texts: dict[str, str] = {}
        self.owner: dict[str, str] = {}  # record id -> corpus id
        self._check_ids(data, name)

    def embedder(self, given: str | os.PathLike[str] | Embedder | None) -> Embedder:
        """The embedder to query with: the given one, else the collection's own."""
        if given is None:
            return self.own
        chosen = _embedder(given, self.own)
        if _model_key(chosen)["model"] != _model_key(self.own)["model"]:
            logger.warning(
                "collection %r was indexed with %s; querying it with %s",
                getattr(self.collection, "name", "?"),
                self.own.model,
                chosen.model,
            )
        return chosen

    def _corpus_id(self, record_id: str, meta: Mapping[str, Any] | None) -> str | None:
        if self.id_key is None:
            return record_id
        value = (meta or {}).get(self.id_key)
        if value is None:
            return None
        return _display_path(str(value)) if self.id_key == "source" else str(value)

    def _check_ids(self, data: Dataset, name: str) -> None:
        mapped: set[str] = set()
        example = ""
        for offset in range(0, self.total, CHROMA_PAGE):
            page = self.collection.get(include=["metadatas"], limit=CHROMA_PAGE, offset=offset)
            metas = page.get("metadatas") or [None] * len(page["ids"])
            for rid, meta in zip(page["ids"], metas, strict=True):
                example = example or str(rid)
                cid = self._corpus_id(str(rid), meta)
                if cid is not None:
                    mapped.add(cid)
        matched = len(mapped & set(data.corpus))
        if not matched:
            how = f"metadata key {self.id_key!r}" if self.id_key else "record ids"
            hint = ""
            if self.id_key is None and "#" in example:
                hint = "; for a `qwen3-rag index` collection use id_key='source' (--id-key source)"
            raise ValueError(
                f"no record of collection {name!r} maps to a corpus id through its {how} "
                f"(e.g. {example!r}){hint}"
            )
        if matched < len(data.corpus):
            logger.warning(
                "%d of %d corpus documents are not in collection %r: they are never retrieved",
                len(data.corpus) - matched,
                len(data.corpus),
                name,
            )

    def text(self, candidate: str) -> str:
        return self.texts[candidate]

    def candidates(self, plan: _Plan, queries: NDArray[np.float32], depth: int) -> Run:
        """The collection's nearest records per query, enough to cover ``depth`` documents.

        Records are fetched until ``depth`` distinct corpus ids are covered (the fetch is
        doubled for the queries whose chunks bunch up on fewer documents), and cut just
        before the record that would add one more document: the records of the first
        ``depth`` documents, best first.
        """
        vectors = truncate(queries, plan.truncation)
        # l2 is the squared distance of unit vectors, 2 - 2 cos; cosine and ip: 1 - similarity
        half = 0.5 if self.space == "l2" else 1.0
        run: Run = {}
        pending = list(range(len(self.qids)))
        fetch = min(depth, self.total)
        with tqdm(
            total=len(self.qids), desc="Querying", unit="query", disable=_no_bar(self.progress)
        ) as bar:
            while pending:
                short: list[int] = []
                for start in range(0, len(pending), CHROMA_QUERY_BATCH):
                    batch = pending[start : start + CHROMA_QUERY_BATCH]
                    found = self.collection.query(
                        query_embeddings=vectors[batch],
                        n_results=fetch,
                        include=["documents", "metadatas", "distances"],
                    )
                    for j, i in enumerate(batch):
                        ranked, covered = self._records(found, j, half, depth)
                        if covered < depth and fetch < self.total:
                            short.append(i)
                        else:
                            run[self.qids[i]] = ranked
                            bar.update(1)
                pending = short
                fetch = min(self.total, 2 * fetch)
        return {q: run[q] for q in self.qids}

    def _records(
        self, found: Mapping[str, Any], j: int, half: float, depth: int
    ) -> tuple[list[tuple[str, float]], int]:
        """Query ``j``'s records, best first, up to ``depth`` documents; and how many."""
        ids = [str(i) for i in found["ids"][j]]
        docs = (found.get("documents") or [])[j] if found.get("documents") else [None] * len(ids)
        metas = (found.get("metadatas") or [])[j] if found.get("metadatas") else [None] * len(ids)
        dists = found["distances"][j]
        ranked: list[tuple[str, float]] = []
        for rid, doc, meta, dist in zip(ids, docs, metas, dists, strict=True):
            cid = self._corpus_id(rid, meta)
            if cid is None:
                continue
            self.texts[rid] = doc or ""
            self.owner[rid] = cid
            ranked.append((rid, 1.0 - half * float(dist)))
        kept: list[tuple[str, float]] = []
        covered: set[str] = set()
        for rid, score in _trec_order(ranked):
            cid = self.owner[rid]
            if cid not in covered:
                if len(covered) == depth:
                    break
                covered.add(cid)
            kept.append((rid, score))
        return kept, len(covered)

    def fold(self, run: Run) -> Run:
        """Records to corpus ids: each document once, at its best record's score."""
        out: Run = {}
        for qid, ranked in run.items():
            best: dict[str, float] = {}
            for rid, score in ranked:
                cid = self.owner[rid]
                if cid not in best or score > best[cid]:
                    best[cid] = score
            out[qid] = _trec_order(best.items())
        return out
