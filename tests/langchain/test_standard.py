"""langchain-tests standard suites, on the tiny local models."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
)
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_qwen3 import Qwen3Embeddings, Qwen3Reranker, Qwen3RerankRetriever
from tests.langchain.conftest import QUERY, make_docs


class _TinyEmbeddingParams:
    """Points the suites' ``embedding_model_params`` at the session's tiny model folder."""

    _emb_path: str

    @pytest.fixture(autouse=True)
    def _tiny_model(self, emb_path: str) -> None:
        self._emb_path = emb_path

    @property
    def embeddings_class(self) -> type[Qwen3Embeddings]:
        return Qwen3Embeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": self._emb_path, "device": "cpu"}


class TestQwen3EmbeddingsUnit(_TinyEmbeddingParams, EmbeddingsUnitTests):
    pass


class TestQwen3EmbeddingsIntegration(_TinyEmbeddingParams, EmbeddingsIntegrationTests):
    pass


class TestQwen3RerankRetrieverIntegration(RetrieversIntegrationTests):
    _params: dict[str, Any]

    @pytest.fixture(autouse=True)
    def _tiny_models(self, emb_path: str, rr_path: str) -> None:
        store = InMemoryVectorStore(embedding=Qwen3Embeddings(model=emb_path, device="cpu"))
        store.add_documents(make_docs())
        self._params = {
            "base_retriever": store.as_retriever(search_kwargs={"k": 6}),
            "reranker": Qwen3Reranker(model=rr_path, device="cpu"),
        }

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return Qwen3RerankRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return self._params

    @property
    def retriever_query_example(self) -> str:
        return QUERY
