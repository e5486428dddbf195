"""Two-stage LangChain retriever: any retriever for candidates, Qwen3-Reranker for the order."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, RetrieverLike
from pydantic import ConfigDict, Field, field_validator

from langchain_qwen3.rerankers import Qwen3Reranker
from qwen3_rag.options import check_positive_int

__all__ = ["Qwen3RerankRetriever"]


class Qwen3RerankRetriever(BaseRetriever):
    """Retrieve candidates with any retriever, then return the top ``k`` by Qwen3-Reranker.

    The base retriever (e.g. ``Chroma.as_retriever(search_kwargs={"k": 30})``) supplies
    candidates; a :class:`~langchain_qwen3.Qwen3Reranker` scores every candidate against the
    query, and the best ``k`` come back best first with ``metadata["relevance_score"]``.
    ``k`` can be overridden per call (``invoke(query, k=5)``); other keyword arguments go to
    the base retriever. Callbacks and tracing propagate to the base retriever's run.

    Setup:
        .. code-block:: bash

            pip install "qwen3-rag[langchain]" langchain-chroma

    Key init args:
        base_retriever: Runnable[str, list[Document]]
            Supplies the candidates (fetch generously, e.g. 20-50).
        reranker: Qwen3Reranker
            Scores the candidates.
        k: int | None
            Documents to return; ``None`` uses ``reranker.top_n``.

    Instantiate:
        .. code-block:: python

            from langchain_chroma import Chroma
            from langchain_qwen3 import Qwen3Embeddings, Qwen3Reranker, Qwen3RerankRetriever

            store = Chroma(embedding_function=Qwen3Embeddings(model="/models/Qwen3-Embedding-0.6B"),
                           collection_metadata={"hnsw:space": "cosine"})
            retriever = Qwen3RerankRetriever(
                base_retriever=store.as_retriever(search_kwargs={"k": 30}),
                reranker=Qwen3Reranker(model="/models/Qwen3-Reranker-0.6B"),
                k=4,
            )

    Rerank:
        .. code-block:: python

            docs = retriever.invoke("What is the capital of China?")
            docs = retriever.invoke("What is the capital of China?", k=2)

    Async:
        .. code-block:: python

            docs = await retriever.ainvoke("What is the capital of China?")

    Example:
        >>> from langchain_core.retrievers import BaseRetriever
        >>> from langchain_core.documents import Document
        >>> class Fixed(BaseRetriever):
        ...     def _get_relevant_documents(self, query, *, run_manager):
        ...         return [Document(page_content="Gravity."), Document(page_content="Beijing.")]
        >>> reranker = Qwen3Reranker(model="Qwen/Qwen3-Reranker-0.6B")
        >>> retriever = Qwen3RerankRetriever(base_retriever=Fixed(), reranker=reranker, k=1)
        >>> retriever.k
        1
        >>> retriever.invoke("capital of China?")  # doctest: +SKIP
        [Document(metadata={'relevance_score': 0.9...}, page_content='Beijing.')]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    base_retriever: RetrieverLike = Field(
        description="Retriever (or runnable str -> list[Document]) that supplies candidates."
    )
    reranker: Qwen3Reranker = Field(description="The Qwen3 reranker that orders the candidates.")
    k: int | None = Field(
        default=None,
        description="Documents to return, best first; None uses reranker.top_n.",
    )

    @field_validator("k")
    @classmethod
    def _check_k(cls, value: int | None) -> int | None:
        if value is not None:
            check_positive_int(value, "k")
        return value

    def _top_n(self, k: int | None) -> int | None:
        if k is not None:
            return k
        return self.k if self.k is not None else self.reranker.top_n

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        candidates = self.base_retriever.invoke(
            query, config={"callbacks": run_manager.get_child()}, **kwargs
        )
        return self.reranker.rerank(candidates, query, top_n=self._top_n(k))

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        candidates = await self.base_retriever.ainvoke(
            query, config={"callbacks": run_manager.get_child()}, **kwargs
        )
        return await self.reranker.arerank(candidates, query, top_n=self._top_n(k))
