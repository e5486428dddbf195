"""LangChain classes for local Qwen3-Embedding and Qwen3-Reranker models.

Thin adapters over :mod:`qwen3_rag`: each class converts LangChain types and delegates the
inference to :class:`qwen3_rag.Embedder` or :class:`qwen3_rag.Reranker`. This module replaces
the ``langchain-qwen3`` package (its ``Qwen3Embeddings`` constructor keeps working).

Example:
    >>> from langchain_qwen3 import Qwen3Embeddings, Qwen3Reranker, Qwen3RerankRetriever
    >>> embeddings = Qwen3Embeddings(model="Qwen/Qwen3-Embedding-0.6B")  # loads nothing yet
    >>> reranker = Qwen3Reranker(model="Qwen/Qwen3-Reranker-0.6B", top_n=3)
    >>> reranker.top_n
    3
"""

from langchain_qwen3.embeddings import Qwen3Embeddings
from langchain_qwen3.llm import as_llm, llm_from_spec
from langchain_qwen3.rerankers import Qwen3CrossEncoder, Qwen3Reranker
from langchain_qwen3.retrievers import Qwen3RerankRetriever

__all__ = [
    "as_llm",
    "llm_from_spec",
    "Qwen3CrossEncoder",
    "Qwen3Embeddings",
    "Qwen3RerankRetriever",
    "Qwen3Reranker",
]
