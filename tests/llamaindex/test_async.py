"""64 concurrent async calls equal the sequential ones, and never block the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llamaindex_qwen3 import Qwen3Embedding, Qwen3Rerank, Qwen3RerankRetriever
from tests.event_loop import MAX_GAP, slow_down, ticking
from tests.models import CORPUS

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # many small tiny-model calls

QUERIES = [f"{CORPUS[i % len(CORPUS)]} #{i}" for i in range(16)]


def candidates() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=1.0 - i / 10)
        for i, t in enumerate(CORPUS)
    ]


class FixedRetriever(BaseRetriever):
    """A first stage that returns the same candidates for every query."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return candidates()


def ids_scores(nodes: list[NodeWithScore]) -> tuple[list[str], list[float]]:
    return [n.node.node_id for n in nodes], [float(n.score or 0.0) for n in nodes]


async def test_64_concurrent_async_calls_equal_sequential_and_never_block_the_loop(
    embed_model: Qwen3Embedding, rerank: Qwen3Rerank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 each of aget_query_embedding, aget_text_embedding_batch, apostprocess_nodes and
    the two-stage retriever's aretrieve."""
    retriever = Qwen3RerankRetriever(FixedRetriever(), rerank)
    batches = [CORPUS[i % len(CORPUS) :] + CORPUS[: i % 3] for i in range(16)]
    expected: list[Any] = [embed_model.get_query_embedding(q) for q in QUERIES]
    expected += [embed_model.get_text_embedding_batch(b) for b in batches]
    expected += [rerank.postprocess_nodes(candidates(), query_str=q) for q in QUERIES]
    expected += [retriever.retrieve(q) for q in QUERIES]

    slow_down(monkeypatch, embed_model.embedder, "embed_queries", "embed_documents")
    slow_down(monkeypatch, rerank.reranker, "rank")
    async with ticking() as ticker:
        got = await asyncio.gather(
            *(embed_model.aget_query_embedding(q) for q in QUERIES),
            *(embed_model.aget_text_embedding_batch(b) for b in batches),
            *(rerank.apostprocess_nodes(candidates(), query_str=q) for q in QUERIES),
            *(retriever.aretrieve(q) for q in QUERIES),
        )
    assert len(got) == 64
    for g, e in zip(got[:32], expected[:32], strict=True):
        np.testing.assert_allclose(np.array(g), np.array(e), atol=1e-5, rtol=0)
    for g, e in zip(got[32:], expected[32:], strict=True):
        (got_ids, got_scores), (want_ids, want_scores) = ids_scores(g), ids_scores(e)
        assert got_ids == want_ids
        np.testing.assert_allclose(got_scores, want_scores, atol=1e-5, rtol=0)
    # each call held the model for CALL_SECONDS: on the loop, one would have stalled it that long
    assert ticker.max_gap < MAX_GAP, f"the event loop stalled for {ticker.max_gap:.3f} s"
