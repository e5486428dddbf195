"""Async embedding runs off the event loop and is safe to call concurrently."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from langchain_qwen3 import Qwen3Embeddings
from tests.langchain.conftest import TEXTS

QUERIES = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(32)]


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
