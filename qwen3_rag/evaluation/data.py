"""Test collections: a BEIR-format folder or in-memory dicts, cleaned the same way."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen3_rag._files import iter_jsonl

__all__ = ["Dataset", "load_beir"]

logger = logging.getLogger(__name__)


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
