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

from qwen3_rag._version import __version__
from qwen3_rag.embedder import Embedder
from qwen3_rag.errors import ModelKindError, ModelLoadError, Qwen3RagError, RemoteError
from qwen3_rag.instructions import PRESETS, Preset
from qwen3_rag.loading import (
    ModelKey,
    clear_cache,
    loaded_models,
    tune_cpu_threads,
)
from qwen3_rag.options import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_RERANKER_MODEL,
    DeviceLike,
    DTypeLike,
    EmbedderOptions,
    InstructionLike,
    RerankerOptions,
)
from qwen3_rag.reranker import Ranked, Reranker

__all__ = [
    "__version__",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_RERANKER_MODEL",
    "PRESETS",
    "DTypeLike",
    "DeviceLike",
    "Embedder",
    "EmbedderOptions",
    "InstructionLike",
    "ModelKey",
    "ModelKindError",
    "ModelLoadError",
    "Preset",
    "Qwen3RagError",
    "Ranked",
    "RemoteError",
    "Reranker",
    "RerankerOptions",
    "clear_cache",
    "loaded_models",
    "tune_cpu_threads",
]
