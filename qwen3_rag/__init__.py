"""qwen3-rag: local Qwen3-Embedding and Qwen3-Reranker inference for RAG.

The core is usable on its own, in a script or a notebook:

Example:
    >>> from qwen3_rag import Embedder, Reranker
    >>> emb = Embedder("Qwen/Qwen3-Embedding-0.6B")  # loads nothing yet
    >>> rr = Reranker("Qwen/Qwen3-Reranker-0.6B")
    >>> vectors = emb.embed_documents(["Beijing is the capital of China."])  # doctest: +SKIP
    >>> rr.rank("capital of China?", ["Beijing is the capital.", "Gravity."])  # doctest: +SKIP

LangChain classes live in ``langchain_qwen3``, LlamaIndex classes in ``llamaindex_qwen3``.
"""

from qwen3_rag.embedder import DEFAULT_EMBEDDING_MODEL, Embedder
from qwen3_rag.instructions import PRESETS, Preset
from qwen3_rag.loading import ModelLoadError, clear_cache
from qwen3_rag.reranker import DEFAULT_RERANKER_MODEL, Reranker

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_RERANKER_MODEL",
    "PRESETS",
    "Embedder",
    "ModelLoadError",
    "Preset",
    "Reranker",
    "clear_cache",
]

__version__ = "0.1.0"
