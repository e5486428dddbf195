"""End to end: a VectorStoreIndex over an embedded, persistent Chroma, queried with reranking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings
from llama_index.core import Settings, StorageContext, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, CBEventType
from llama_index.core.callbacks.llama_debug import LlamaDebugHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.vector_stores.chroma import ChromaVectorStore

from llamaindex_qwen3 import Qwen3Embedding, Qwen3Rerank, Qwen3RerankRetriever
from qwen3_rag import Reranker
from tests.llamaindex.conftest import QUERY

COLLECTION = "qwen3_docs"
CANDIDATES = 6


def _client(path: Path) -> Any:
    return chromadb.PersistentClient(str(path), settings=ChromaSettings(anonymized_telemetry=False))


def _ids_scores(nodes: list[NodeWithScore]) -> list[tuple[str, float | None]]:
    return [(n.node.node_id, n.score) for n in nodes]


def _expected(reranker: Reranker, candidates: list[NodeWithScore], top_n: int) -> list[Any]:
    texts = [c.node.get_content(metadata_mode=MetadataMode.EMBED) for c in candidates]
    ranked = reranker.rank(QUERY, texts, top_n=top_n)
    return [(candidates[i].node.node_id, s) for i, s in ranked]


@pytest.fixture
def chroma_index(
    tmp_path: Path, embed_model: Qwen3Embedding, nodes: list[TextNode]
) -> tuple[VectorStoreIndex, Path]:
    collection = _client(tmp_path).create_collection(COLLECTION, embedding_function=None)
    store = ChromaVectorStore(chroma_collection=collection)
    storage = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed_model)
    return index, tmp_path


async def test_query_engine_with_rerank(
    chroma_index: tuple[VectorStoreIndex, Path],
    embed_model: Qwen3Embedding,
    rr_dir: str,
    core_reranker: Reranker,
    nodes: list[TextNode],
    captured_events: list[Any],
) -> None:
    index, path = chroma_index
    debug = LlamaDebugHandler()
    saved = Settings._callback_manager
    try:
        Settings.callback_manager = CallbackManager(
            [debug]
        )  # the engine hands it to postprocessors
        engine = index.as_query_engine(
            similarity_top_k=CANDIDATES,
            node_postprocessors=[Qwen3Rerank(rr_dir, top_n=3)],
            llm=MockLLM(),
        )
    finally:
        Settings._callback_manager = saved
    response = engine.query(QUERY)

    candidates = index.as_retriever(similarity_top_k=CANDIDATES).retrieve(QUERY)
    assert len(candidates) == CANDIDATES
    want = _expected(core_reranker, candidates, 3)
    assert _ids_scores(response.source_nodes) == want
    # the reranker changed the vector store's order on these random weights
    assert [c.node.node_id for c in candidates[:3]] != [i for i, _ in want]

    starts = [e for e in captured_events if isinstance(e, ReRankStartEvent)]
    ends = [e for e in captured_events if isinstance(e, ReRankEndEvent)]
    assert len(starts) == len(ends) == 1
    assert len(starts[0].nodes) == CANDIDATES and starts[0].top_n == 3
    assert _ids_scores(ends[0].nodes) == want
    assert len(debug.get_event_pairs(CBEventType.RERANKING)) == 1

    # async query: same sources
    captured_events.clear()
    aresponse = await engine.aquery(QUERY)
    assert _ids_scores(aresponse.source_nodes) == want
    kinds = [type(e) for e in captured_events if isinstance(e, ReRankStartEvent | ReRankEndEvent)]
    assert kinds == [ReRankStartEvent, ReRankEndEvent]

    # the persisted collection, reopened by a new client, retrieves the same
    SharedSystemClient.clear_system_cache()
    reopened = _client(path).get_collection(COLLECTION, embedding_function=None)
    assert reopened.count() == len(nodes)
    index2 = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=reopened), embed_model=embed_model
    )
    again = index2.as_retriever(similarity_top_k=CANDIDATES).retrieve(QUERY)
    assert _ids_scores(again) == _ids_scores(candidates)
    engine2 = index2.as_query_engine(
        similarity_top_k=CANDIDATES,
        node_postprocessors=[Qwen3Rerank(rr_dir, top_n=3)],
        llm=MockLLM(),
    )
    assert _ids_scores(engine2.query(QUERY).source_nodes) == want


async def test_rerank_retriever_in_retriever_query_engine(
    chroma_index: tuple[VectorStoreIndex, Path],
    rr_dir: str,
    core_reranker: Reranker,
    captured_events: list[Any],
) -> None:
    index, _ = chroma_index
    first = index.as_retriever(similarity_top_k=CANDIDATES)
    retriever = Qwen3RerankRetriever(first, Qwen3Rerank(rr_dir, top_n=2))
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    want = _expected(core_reranker, first.retrieve(QUERY), 2)

    assert _ids_scores(retriever.retrieve(QUERY)) == want
    assert _ids_scores(await retriever.aretrieve(QUERY)) == want
    assert _ids_scores(engine.query(QUERY).source_nodes) == want
    assert _ids_scores((await engine.aquery(QUERY)).source_nodes) == want
    starts = [e for e in captured_events if isinstance(e, ReRankStartEvent)]
    assert len(starts) == 4
