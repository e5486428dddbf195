"""A tiny BEIR-format dataset, written by the tests that need one (a few KB, no download)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TOPICS = {
    "geo": [
        "The capital of China is Beijing, a city in the north.",
        "Paris is the capital of France and its largest city.",
        "Berlin is the capital of Germany; it sits on the river Spree.",
        "Tokyo is the capital of Japan and a huge metropolis.",
    ],
    "sci": [
        "Gravity is a force that attracts two bodies towards each other.",
        "Photosynthesis turns light, water and carbon dioxide into sugar.",
        "Electrons carry a negative charge and orbit the nucleus.",
        "Water boils at one hundred degrees Celsius at sea level.",
    ],
    "code": [
        "Python is a programming language; def main(): return 42",
        "A for loop repeats a block of code for every item of a list.",
        "Git records the history of a project as a chain of commits.",
        "Unit tests check that each function returns what it should.",
    ],
    "ml": [
        "Machine learning models turn text into vectors; similar texts get similar vectors.",
        "Rerankers read a query and a candidate together and output a relevance score.",
        "Matryoshka embeddings keep their meaning when cut to fewer dimensions.",
        "Instructions tell an embedding model which task the query belongs to.",
    ],
}

#: doc id -> {"title", "text"}: four topics of four documents.
CORPUS: dict[str, dict[str, str]] = {
    f"{topic}-{i}": {"title": topic.upper() if i % 2 else "", "text": text}
    for topic, texts in TOPICS.items()
    for i, text in enumerate(texts)
}

QUERIES = {
    "q-capital": "What is the capital of China?",
    "q-france": "Which city is the capital of France?",
    "q-gravity": "What force attracts two bodies?",
    "q-boil": "At what temperature does water boil?",
    "q-python": "Which programming language has def main?",
    "q-git": "How does git keep the history of a project?",
    "q-vectors": "How do models turn text into vectors?",
    "q-rerank": "What does a reranker output?",
    "q-unjudged": "A query with no relevance judgement at all",
}

#: Graded: 2 for the answer, 1 for the rest of its topic.
QRELS: dict[str, dict[str, int]] = {
    "q-capital": {"geo-0": 2, "geo-1": 1, "geo-2": 1},
    "q-france": {"geo-1": 2},
    "q-gravity": {"sci-0": 2, "sci-2": 1},
    "q-boil": {"sci-3": 2},
    "q-python": {"code-0": 2, "code-1": 1},
    "q-git": {"code-2": 2},
    "q-vectors": {"ml-0": 2, "ml-2": 1, "ml-3": 1},
    "q-rerank": {"ml-1": 2},
}


def joined(doc: Mapping[str, str]) -> str:
    """BEIR's join of title and text, written out independently of the package."""
    return (doc["title"] + " " + doc["text"]).strip()


def write_beir(
    folder: Path,
    corpus: Mapping[str, Any] | None = None,
    queries: Mapping[str, str] | None = None,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    *,
    split: str = "test",
) -> Path:
    """Write a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv (with a header)."""
    corpus = CORPUS if corpus is None else corpus
    queries = QUERIES if queries is None else queries
    qrels = QRELS if qrels is None else qrels
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for did, doc in corpus.items():
            record = {"_id": did, **doc} if isinstance(doc, Mapping) else {"_id": did, "text": doc}
            f.write(json.dumps(record) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    with (folder / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, row in qrels.items():
            for did, grade in row.items():
                f.write(f"{qid}\t{did}\t{grade}\n")
    return folder
