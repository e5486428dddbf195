"""The LangChain and LlamaIndex classes run against a model server by changing a field.

Their async methods call the core's async methods: with ``base_url`` nothing runs in a worker
thread (once the tokenizer is loaded: its one-off load runs in one). The server is the literal
loopback server of tests/remote_server.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from langchain_qwen3 import Qwen3Embeddings, Qwen3Reranker
from llamaindex_qwen3 import Qwen3Embedding, Qwen3Rerank
from tests.remote_server import LoopbackServer

DOCS = ["The capital of China is Beijing.", "Gravity attracts two bodies.", "Paris is in France."]


@pytest.fixture(scope="module")
def server(real_embedding_dir: Path, real_reranker_dir: Path) -> Iterator[LoopbackServer]:
    with LoopbackServer(real_embedding_dir, real_reranker_dir).running() as s:
        yield s


@pytest.fixture
def no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a remote async call used a worker thread")

    monkeypatch.setattr(asyncio, "to_thread", refuse)


async def test_langchain_classes_against_a_server(
    server: LoopbackServer, real_embedding_dir: Path, real_reranker_dir: Path, no_threads: None
) -> None:
    local = Qwen3Embeddings(model=str(real_embedding_dir), device="cpu")
    served = Qwen3Embeddings(model=str(real_embedding_dir), base_url=server.url, dimensions=32)
    assert served.embedder.base_url == server.url and served.timeout == 60.0
    served.embedder.load()  # the tokenizer, for client-side truncation
    np.testing.assert_allclose(
        await served.aembed_query("capital of China?"),
        local.embedder.embed_queries(["capital of China?"])[0][:32]
        / np.linalg.norm(local.embedder.embed_queries(["capital of China?"])[0][:32]),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        await served.aembed_documents(DOCS), served.embed_documents(DOCS), atol=1e-6
    )
    rr_local = Qwen3Reranker(model=str(real_reranker_dir), device="cpu", top_n=2)
    rr = Qwen3Reranker(model=str(real_reranker_dir), base_url=server.url, top_n=2)
    rr.reranker.load()
    docs = [Document(page_content=d) for d in DOCS]
    got = await rr.acompress_documents(docs, "capital of China?")
    want = rr_local.compress_documents(docs, "capital of China?")
    assert [d.page_content for d in got] == [d.page_content for d in want]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in got],
        [d.metadata["relevance_score"] for d in want],
        atol=1e-5,
    )
    assert "relevance_score" not in docs[0].metadata  # inputs untouched


async def test_llamaindex_classes_against_a_server(
    server: LoopbackServer, real_embedding_dir: Path, real_reranker_dir: Path, no_threads: None
) -> None:
    local = Qwen3Embedding(str(real_embedding_dir), device="cpu")
    served = Qwen3Embedding(str(real_embedding_dir), base_url=server.url)
    served.embedder.load()
    np.testing.assert_allclose(
        await served.aget_query_embedding("capital of China?"),
        local.get_query_embedding("capital of China?"),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        await served.aget_text_embedding_batch(DOCS),
        local.get_text_embedding_batch(DOCS),
        atol=1e-5,
    )
    rerank = Qwen3Rerank(str(real_reranker_dir), base_url=server.url, top_n=2)
    rerank.reranker.load()
    nodes = [NodeWithScore(node=TextNode(text=d), score=0.5) for d in DOCS]
    got = await rerank.apostprocess_nodes(nodes, query_bundle=QueryBundle("capital of China?"))
    want = Qwen3Rerank(str(real_reranker_dir), device="cpu", top_n=2).postprocess_nodes(
        nodes, query_bundle=QueryBundle("capital of China?")
    )
    assert [n.node.get_content() for n in got] == [n.node.get_content() for n in want]
    np.testing.assert_allclose([n.score for n in got], [n.score for n in want], atol=1e-5)
    assert served.to_dict()["base_url"] == server.url  # serialised: the configuration
    assert served.to_dict()["api_key_env"] is None  # a variable's name at most, never a key
