"""The adaptation data on disk: a BEIR folder plus the training triplets.

``data/`` is a standard BEIR folder, what ``qwen3-rag eval`` and
:func:`qwen3_rag.evaluation.load_beir` read:

* ``corpus.jsonl``: every passage (``_id``, ``title`` empty, ``text``), whether or not it got a
  query: in the held-out evaluation they are all candidates, as in the real index;
* ``queries.jsonl``: every kept synthetic query (``_id``, ``text``);
* ``qrels/train.tsv``, ``qrels/dev.tsv``, ``qrels/test.tsv``: query -> its passage (grade 1).

Pairs are split **by passage**: a passage and its queries sit in one split, so the test
passages are never trained on, neither as positives nor as negatives (negatives are mined
from the passages outside dev and test only).

``data/triplets.jsonl`` holds one training example per line: ``split`` (``train`` or
``dev``), ``query_id``, ``query``, ``positive_id``, ``positive``, ``negative_ids``,
``negatives`` (texts) and the scores they were mined with.

Example:
    >>> from qwen3_rag.adapt.data import split_by_passage
    >>> split = split_by_passage([f"p{i}" for i in range(20)], test=0.2, dev=0.1, seed=0)
    >>> sorted(list(split.values()).count(s) for s in ("train", "dev", "test"))
    [2, 4, 14]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen3_rag._files import read_jsonl, write_jsonl, write_text
from qwen3_rag.adapt.corpus import Passage

__all__ = [
    "MIN_PAIRS",
    "SPLITS",
    "Triplet",
    "query_id",
    "read_triplets",
    "split_by_passage",
    "write_beir",
    "write_triplets",
]

SPLITS = ("train", "dev", "test")
#: Fewest kept pairs :func:`split_by_passage` accepts: a few test queries, a dev query and
#: a couple of training batches' worth.
MIN_PAIRS = 10


def query_id(passage_id: str, query: str) -> str:
    """A stable id for a synthetic query: ``"q-"`` and a hash of its passage id and text."""
    digest = hashlib.sha256(f"{passage_id}\0{query}".encode()).hexdigest()
    return f"q-{digest[:16]}"


def split_by_passage(
    passage_ids: Sequence[str], *, test: float = 0.2, dev: float = 0.1, seed: int = 0
) -> dict[str, str]:
    """Assign each passage to ``train``, ``dev`` or ``test``, reproducibly.

    Passages are ordered by a seeded hash of their id (so the split does not depend on the
    order or on which other passages exist); the first ``round(n * test)`` (at least 1) go to
    test, the next ``round(n * dev)`` (at least 1 when ``dev > 0``) to dev, the rest to train.

    Args:
        passage_ids: The passages that have a kept query (duplicates ignored).
        test: Fraction held out for the before/after evaluation.
        dev: Fraction held out for the per-epoch dev loss.
        seed: Seeds the hash.

    Returns:
        Passage id -> split name.

    Raises:
        ValueError: If the fractions are out of range, or there are fewer than
            :data:`MIN_PAIRS` passages (the message says how many there are).
    """
    if not (0 < test < 1 and 0 <= dev < 1 and test + dev < 1):
        raise ValueError(
            f"test and dev must be fractions with test > 0 and test + dev < 1, got {test}, {dev}"
        )
    ids = list(dict.fromkeys(passage_ids))
    n = len(ids)
    n_test = max(1, round(n * test))
    n_dev = max(1, round(n * dev)) if dev > 0 else 0
    if n < MIN_PAIRS or n - n_test - n_dev < 2:
        raise ValueError(
            f"{n} passages have a kept query: too few to split into train, dev and test; "
            f"adapt needs at least {MIN_PAIRS} (add documents, or lower the filter threshold)"
        )
    order = sorted(ids, key=lambda p: hashlib.sha256(f"{seed}\0{p}".encode()).digest())
    return {
        p: "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
        for i, p in enumerate(order)
    }


def write_beir(
    folder: Path,
    passages: Iterable[Passage],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, str]],
) -> None:
    """Write a BEIR folder (each file atomically).

    Args:
        folder: Where to write (created).
        passages: The corpus.
        queries: Query id -> text.
        qrels: Split name -> query id -> its passage id (each written with grade 1).
    """
    write_jsonl(
        folder / "corpus.jsonl",
        (
            {"_id": p.id, "title": "", "text": p.text, "metadata": {"source": p.source}}
            for p in passages
        ),
    )
    write_jsonl(folder / "queries.jsonl", ({"_id": q, "text": t} for q, t in queries.items()))
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{p}\t1" for q, p in rows.items()]
        write_text(folder / "qrels" / f"{split}.tsv", "\n".join(lines) + "\n")


@dataclass(frozen=True)
class Triplet:
    """One training example: a query, its passage and mined hard negatives.

    Attributes:
        split: ``"train"`` or ``"dev"``.
        query_id: The query's id in ``queries.jsonl``.
        query: The query text (without instruction: the model's formatting adds it).
        positive_id: Its passage's id.
        positive: Its passage's text.
        negative_ids: The hard negatives' ids, best embedding score first.
        negatives: Their texts.
        positive_score: The query's cosine similarity with its passage when mined.
        negative_scores: The negatives' cosine similarities when mined.
    """

    split: str
    query_id: str
    query: str
    positive_id: str
    positive: str
    negative_ids: tuple[str, ...]
    negatives: tuple[str, ...]
    positive_score: float | None = None
    negative_scores: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-ready dict."""
        return {
            "split": self.split,
            "query_id": self.query_id,
            "query": self.query,
            "positive_id": self.positive_id,
            "positive": self.positive,
            "negative_ids": list(self.negative_ids),
            "negatives": list(self.negatives),
            "positive_score": self.positive_score,
            "negative_scores": list(self.negative_scores),
        }


def write_triplets(path: Path, triplets: Iterable[Triplet]) -> None:
    """Write triplets as JSON Lines, atomically."""
    write_jsonl(path, (t.to_dict() for t in triplets))


def read_triplets(path: Path, split: str | None = None) -> list[Triplet]:
    """Triplets from :func:`write_triplets`, optionally only one split."""
    out = []
    for r in read_jsonl(path):
        if split is not None and r["split"] != split:
            continue
        out.append(
            Triplet(
                split=r["split"],
                query_id=r["query_id"],
                query=r["query"],
                positive_id=r["positive_id"],
                positive=r["positive"],
                negative_ids=tuple(r["negative_ids"]),
                negatives=tuple(r["negatives"]),
                positive_score=r.get("positive_score"),
                negative_scores=tuple(r.get("negative_scores") or ()),
            )
        )
    return out
