"""Golden values with the published weights (opt-in: they must be downloaded).

Run on a machine that can reach the Hugging Face hub with
``QWEN3_RAG_REAL_MODELS=1 python -m pytest -m real_models``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from qwen3_rag import Embedder, Reranker

pytestmark = [
    pytest.mark.real_models,
    pytest.mark.skipif(
        os.environ.get("QWEN3_RAG_REAL_MODELS") != "1",
        reason="needs the published Qwen3 weights: set QWEN3_RAG_REAL_MODELS=1 to download them",
    ),
]

QUERIES = ["What is the capital of China?", "Explain gravity"]
DOCUMENTS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other. It gives weight to physical "
    "objects and is responsible for the movement of planets around the sun.",
]


def test_qwen3_embedding_0_6b_golden_scores() -> None:
    """The scores printed in the Qwen3-Embedding README (fp32)."""
    emb = Embedder("Qwen/Qwen3-Embedding-0.6B", device="cpu", dtype="float32")
    scores = emb.embed_queries(QUERIES) @ emb.embed_documents(DOCUMENTS).T
    np.testing.assert_allclose(scores, [[0.7646, 0.1414], [0.1355, 0.6000]], atol=1e-3)


def test_qwen3_reranker_0_6b_prefers_the_answer() -> None:
    rr = Reranker("Qwen/Qwen3-Reranker-0.6B", device="cpu", dtype="float32")
    for i, query in enumerate(QUERIES):
        scores = rr.score(query, DOCUMENTS)
        assert scores[i] > 0.5 > scores[1 - i]
