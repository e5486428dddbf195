"""LlamaIndex classes for local Qwen3-Embedding and Qwen3-Reranker.

Thin adapters over :mod:`qwen3_rag`: they convert LlamaIndex types and delegate to
:class:`qwen3_rag.Embedder` and :class:`qwen3_rag.Reranker`.

Install with ``pip install "qwen3-rag[llamaindex]"``.

Example:
    >>> from llama_index.core import Settings
    >>> from llamaindex_qwen3 import Qwen3Embedding, Qwen3Rerank
    >>> Settings.embed_model = Qwen3Embedding("Qwen/Qwen3-Embedding-0.6B")  # loads nothing yet
    >>> rerank = Qwen3Rerank("Qwen/Qwen3-Reranker-0.6B", top_n=3)
"""

from llamaindex_qwen3.embeddings import Qwen3Embedding
from llamaindex_qwen3.llm import as_llm
from llamaindex_qwen3.postprocessors import Qwen3Rerank
from llamaindex_qwen3.retrievers import Qwen3RerankRetriever

__all__ = ["as_llm", "Qwen3Embedding", "Qwen3Rerank", "Qwen3RerankRetriever"]
