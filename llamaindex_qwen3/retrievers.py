"""Two-stage retrieval for LlamaIndex: any retriever, then Qwen3-Reranker."""

from __future__ import annotations

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle

from llamaindex_qwen3.postprocessors import Qwen3Rerank

__all__ = ["Qwen3RerankRetriever"]


class Qwen3RerankRetriever(BaseRetriever):
    """Retrieve candidates with any retriever, then rerank them with :class:`Qwen3Rerank`.

    Use it wherever LlamaIndex takes a retriever, e.g. in a ``RetrieverQueryEngine``: fetch a
    generous candidate set cheaply (``similarity_top_k=30``), keep the reranker's ``top_n``.
    ``aretrieve`` awaits the inner retriever's ``aretrieve`` and reranks off the event loop.

    Install with ``pip install "qwen3-rag[llamaindex]"``.

    Args:
        retriever: The first-stage retriever.
        reranker: The :class:`Qwen3Rerank` applied to its results.
        callback_manager: LlamaIndex callback manager; default a new one.
        verbose: Print retrieval details (LlamaIndex's ``verbose``).

    Example:
        >>> from llamaindex_qwen3 import Qwen3Rerank, Qwen3RerankRetriever
        >>> retriever = Qwen3RerankRetriever(  # doctest: +SKIP
        ...     index.as_retriever(similarity_top_k=30),
        ...     Qwen3Rerank("Qwen/Qwen3-Reranker-0.6B", top_n=5),
        ... )
        >>> nodes = retriever.retrieve("What is the capital of China?")  # doctest: +SKIP
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        reranker: Qwen3Rerank,
        *,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.retriever = retriever
        self.reranker = reranker

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = self.retriever.retrieve(query_bundle)
        return self.reranker.postprocess_nodes(nodes, query_bundle=query_bundle)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = await self.retriever.aretrieve(query_bundle)
        return await self.reranker.apostprocess_nodes(nodes, query_bundle=query_bundle)
