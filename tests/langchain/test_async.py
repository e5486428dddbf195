"""Async calls run off the event loop and are safe to make concurrently."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_qwen3 import Qwen3Embeddings, Qwen3Reranker, Qwen3RerankRetriever
from tests.event_loop import MAX_GAP, slow_down, ticking
from tests.langchain.conftest import TEXTS, make_docs

QUERIES = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(32)]

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # many small tiny-model calls


async def test_32_concurrent_aembed_query_equal_sequential(embeddings: Qwen3Embeddings) -> None:
    sequential = [embeddings.embed_query(q) for q in QUERIES]
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    tick_task = asyncio.create_task(ticker())
    concurrent = await asyncio.gather(*(embeddings.aembed_query(q) for q in QUERIES))
    done = True
    await tick_task
    assert concurrent == sequential
    assert ticks > 1


async def test_aembed_never_blocks_the_event_loop(
    embeddings: Qwen3Embeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every core call waits until the ticker has advanced: on the loop, it would deadlock."""
    loop_thread = threading.get_ident()
    ticked = threading.Event()
    call_threads: list[int] = []
    real_queries = embeddings.embedder.embed_queries
    real_documents = embeddings.embedder.embed_documents

    def gated(real: Any) -> Any:
        def call(texts: Sequence[str], **kwargs: Any) -> np.ndarray:
            call_threads.append(threading.get_ident())
            assert ticked.wait(timeout=10), "the event loop was blocked: the ticker never ran"
            return real(texts, **kwargs)

        return call

    monkeypatch.setattr(embeddings.embedder, "embed_queries", gated(real_queries))
    monkeypatch.setattr(embeddings.embedder, "embed_documents", gated(real_documents))

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(5):
            await asyncio.sleep(0.001)
            ticks += 1
        ticked.set()

    tick_task = asyncio.create_task(ticker())
    vectors = await asyncio.gather(
        *(embeddings.aembed_query(q) for q in QUERIES), embeddings.aembed_documents(TEXTS)
    )
    await tick_task
    assert ticks == 5
    assert len(call_threads) == 33
    assert loop_thread not in call_threads
    one_by_one = np.stack([real_queries([q])[0] for q in QUERIES])
    np.testing.assert_array_equal(np.array(vectors[:32], dtype=np.float32), one_by_one)
    np.testing.assert_array_equal(np.array(vectors[32], dtype=np.float32), real_documents(TEXTS))


class FixedRetriever(BaseRetriever):
    """A first stage that returns the same candidates for every query."""

    docs: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return list(self.docs)


def _same_documents(got: Sequence[Document], expected: Sequence[Document]) -> None:
    assert [d.page_content for d in got] == [d.page_content for d in expected]
    for g, e in zip(got, expected, strict=True):
        assert {**g.metadata, "relevance_score": 0} == {**e.metadata, "relevance_score": 0}
        assert abs(g.metadata["relevance_score"] - e.metadata["relevance_score"]) <= 1e-5


async def test_64_concurrent_async_calls_equal_sequential_and_never_block_the_loop(
    embeddings: Qwen3Embeddings, reranker: Qwen3Reranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 each of aembed_query, aembed_documents, acompress_documents and retriever.ainvoke."""
    retriever = Qwen3RerankRetriever(
        base_retriever=FixedRetriever(docs=make_docs()), reranker=reranker, k=2
    )
    queries = QUERIES[:16]
    batches = [TEXTS[i % len(TEXTS) :] + TEXTS[: i % 3] for i in range(16)]
    docs = make_docs()
    expected: list[Any] = [embeddings.embed_query(q) for q in queries]
    expected += [embeddings.embed_documents(b) for b in batches]
    expected += [reranker.compress_documents(docs, q) for q in queries]
    expected += [retriever.invoke(q) for q in queries]

    slow_down(monkeypatch, embeddings.embedder, "embed_queries", "embed_documents")
    slow_down(monkeypatch, reranker.reranker, "rank")
    async with ticking() as ticker:
        got = await asyncio.gather(
            *(embeddings.aembed_query(q) for q in queries),
            *(embeddings.aembed_documents(b) for b in batches),
            *(reranker.acompress_documents(docs, q) for q in queries),
            *(retriever.ainvoke(q) for q in queries),
        )
    assert len(got) == 64
    for g, e in zip(got[:32], expected[:32], strict=True):
        np.testing.assert_allclose(np.array(g), np.array(e), atol=1e-5, rtol=0)
    for g, e in zip(got[32:], expected[32:], strict=True):
        _same_documents(g, e)
    # each call held the model for CALL_SECONDS: on the loop, one would have stalled it that long
    assert ticker.max_gap < MAX_GAP, f"the event loop stalled for {ticker.max_gap:.3f} s"
