"""Qwen3-Embedding as a LlamaIndex embedding model."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from qwen3_rag import DEFAULT_EMBEDDING_MODEL, Embedder

__all__ = ["Qwen3Embedding"]


class Qwen3Embedding(BaseEmbedding):
    """Local Qwen3-Embedding for LlamaIndex: the published recipe, no server.

    Query embeddings (``get_query_embedding``) get the task instruction; text embeddings
    (documents, nodes) are raw text, except for symmetric presets. All work is delegated to
    :class:`qwen3_rag.Embedder`: constructing this class loads nothing, the model loads on first
    use and is shared by every object in the process that asks for the same model, device and
    dtype. Async methods run the model in a worker thread, off the event loop.

    The core object is built from the fields at construction; to change a loading or
    inference field, construct a new object (the loaded model is shared, so this is cheap).

    Install with ``pip install "qwen3-rag[llamaindex]"``.

    Args:
        model: Hugging Face hub id or local folder of a Qwen3-Embedding model
            (``model_name=`` is accepted as an alias).
        **kwargs: Any field of this class (``instruction``, ``dimensions``, ``device``,
            ``dtype``, ``max_length``, ``embed_batch_size``, ``max_batch_tokens``, ``revision``,
            ``cache_dir``, ``local_files_only``) or of :class:`BaseEmbedding`.

    Raises:
        ValueError: If ``model`` and ``model_name`` disagree, or the core rejects a value
            (e.g. ``dimensions < 32``, an unknown preset name).

    Example:
        >>> from llama_index.core import Settings
        >>> from llamaindex_qwen3 import Qwen3Embedding
        >>> Settings.embed_model = Qwen3Embedding("Qwen/Qwen3-Embedding-0.6B")  # loads nothing
        >>> Settings.embed_model.get_query_embedding("capital of China?")  # doctest: +SKIP
    """

    model_name: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="Hugging Face hub id or local folder of the Qwen3-Embedding model.",
    )
    instruction: str | None = Field(
        default="web_search",
        description=(
            "Query instruction: a preset name from qwen3_rag.PRESETS, literal instruction "
            "text, or None to embed queries as raw text."
        ),
    )
    dimensions: int | None = Field(
        default=None,
        description="Matryoshka output size (32 <= dimensions <= hidden size); None keeps all.",
    )
    device: str | None = Field(
        default=None,
        description="'cpu', 'cuda', 'cuda:N' or 'mps'; None picks CUDA, else MPS, else CPU.",
    )
    dtype: str | None = Field(
        default=None,
        description="'float32', 'bfloat16' or 'float16'; None: float32 on CPU/MPS, bf16 on CUDA.",
    )
    max_length: int = Field(
        default=8192,
        description="Most tokens per text, <|endoftext|> included; longer texts are truncated.",
    )
    embed_batch_size: int = Field(
        default=32,
        description="Texts per call into the core, which is also its most texts per forward pass.",
        gt=0,
        le=2048,
    )
    max_batch_tokens: int | None = Field(
        default=16384,
        description="Most padded tokens per forward pass (bounds memory); None: no bound.",
    )
    revision: str | None = Field(
        default=None, description="Hub revision (branch, tag or commit) of the model."
    )
    cache_dir: str | None = Field(default=None, description="Hugging Face hub cache folder.")
    local_files_only: bool = Field(
        default=False, description="Never use the network; load from local files only."
    )
    quantize: str | None = Field(
        default=None,
        description=(
            'None (exact, the default) or "int8": dynamic int8 linear layers on CPU, about 2x '
            "faster, approximate (needs the int8 extra; see qwen3_rag.Embedder)."
        ),
    )

    _embedder: Embedder = PrivateAttr()

    def __init__(
        self, model: str | None = None, *, model_name: str | None = None, **kwargs: Any
    ) -> None:
        if model is not None and model_name is not None and model != model_name:
            raise ValueError(
                f"model={model!r} and model_name={model_name!r} disagree: pass only one"
            )
        name = model if model is not None else model_name
        if name is not None:
            kwargs["model_name"] = name
        super().__init__(**kwargs)
        self._embedder = Embedder(
            self.model_name,
            instruction=self.instruction,
            dimensions=self.dimensions,
            device=self.device,
            dtype=self.dtype,
            max_length=self.max_length,
            batch_size=self.embed_batch_size,
            max_batch_tokens=self.max_batch_tokens,
            revision=self.revision,
            cache_dir=self.cache_dir,
            local_files_only=self.local_files_only,
            quantize=self.quantize,
        )

    @classmethod
    def class_name(cls) -> str:
        """Name under which LlamaIndex serialises this class."""
        return "Qwen3Embedding"

    @property
    def model(self) -> str:
        """The hub id or folder of the model (same as ``model_name``)."""
        return self.model_name

    @property
    def embedder(self) -> Embedder:
        """The :class:`qwen3_rag.Embedder` this class delegates to."""
        return self._embedder

    def _get_query_embedding(self, query: str) -> Embedding:
        """Embed one query, with the instruction."""
        return self._embedder.embed_queries([query])[0].tolist()  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> Embedding:
        """Embed one document."""
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        """Embed documents in one batched core call."""
        return self._embedder.embed_documents(texts).tolist()  # type: ignore[no-any-return]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        """Embed one query in a worker thread."""
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        """Embed one document in a worker thread."""
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        """Embed documents in one batched core call, in a worker thread."""
        return await asyncio.to_thread(self._get_text_embeddings, texts)
