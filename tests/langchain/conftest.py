from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document

from langchain_qwen3 import Qwen3Embeddings, Qwen3Reranker

#: A small corpus with ids and metadata; content is what the tiny tokenizer was trained on.
TEXTS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "Paris is the capital of France and a large city in Europe.",
    "Python is a programming language; def main(): return 42",
    "Machine learning models turn text into vectors; similar texts get similar vectors.",
    "Rerankers read a query and a candidate together and output a relevance score.",
    "What is the capital of France? Paris.",
    "Bodies attract each other: that force is gravity.",
]
QUERY = "What is the capital of China?"


def make_docs() -> list[Document]:
    return [
        Document(page_content=t, metadata={"source": f"doc{i}", "n": i}, id=f"id{i}")
        for i, t in enumerate(TEXTS)
    ]


@pytest.fixture
def docs() -> list[Document]:
    return make_docs()


@pytest.fixture(scope="session")
def emb_path(tiny_embedding_dir: Path) -> str:
    return str(tiny_embedding_dir)


@pytest.fixture(scope="session")
def rr_path(tiny_reranker_dir: Path) -> str:
    return str(tiny_reranker_dir)


@pytest.fixture
def embeddings(emb_path: str) -> Qwen3Embeddings:
    return Qwen3Embeddings(model=emb_path, device="cpu")


@pytest.fixture
def reranker(rr_path: str) -> Qwen3Reranker:
    return Qwen3Reranker(model=rr_path, device="cpu", top_n=3)
