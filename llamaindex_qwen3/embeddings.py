"""Qwen3-Embedding as a LlamaIndex embedding model."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import PrivateAttr

from qwen3_rag import Embedder, EmbedderOptions
from qwen3_rag.fields import EmbedderFields, option_field
from qwen3_rag.options import check_text, check_texts

__all__ = ["Qwen3Embedding"]


class Qwen3Embedding(EmbedderFields, BaseEmbedding):
    """Local Qwen3-Embedding for LlamaIndex: the published recipe, no server.

    Query embeddings (``get_query_embedding``) get the task instruction; text embeddings
    (documents, nodes) are raw text, except for symmetric presets. All work is delegated to
    :class:`qwen3_rag.Embedder`: constructing this class loads nothing, the model loads on first
    use and is shared by every object in the process that asks for the same model, device and
    dtype. Async methods run the model in a worker thread, off the event loop; with
    ``base_url`` (a model server, see :mod:`qwen3_rag.remote`) they send their requests from
    the event loop.

    The core object is built from the fields at construction; to change a loading or
    inference field, construct a new object (the loaded model is shared, so this is cheap).

    Install with ``pip install "qwen3-rag[llamaindex]"``.

    Args:
        model: Hugging Face hub id or local folder of a Qwen3-Embedding model
            (``model_name=`` is accepted as an alias).
        **kwargs: Any field of this class (``instruction``, ``dimensions``, ``device``,
            ``dtype``, ``max_length``, ``embed_batch_size``, ``max_batch_tokens``, ``revision``,
            ``cache_dir``, ``local_files_only``, ``quantize``, ``show_progress``; the same
            types and defaults as :class:`qwen3_rag.EmbedderOptions`) or of
            :class:`BaseEmbedding`. ``instruction=None`` (default) uses ``"web_search"``;
            ``instruction=""`` embeds queries as raw text.

    Raises:
        ValueError: If ``model`` and ``model_name`` disagree, or the core rejects a value
            (e.g. ``dimensions < 32``, an unknown preset name).

    Example:
        >>> from llama_index.core import Settings
        >>> from llamaindex_qwen3 import Qwen3Embedding
        >>> Settings.embed_model = Qwen3Embedding("Qwen/Qwen3-Embedding-0.6B")  # loads nothing
        >>> Settings.embed_model.get_query_embedding("capital of China?")  # doctest: +SKIP
    """

    model_name: str = option_field(EmbedderOptions, "model")
    embed_batch_size: int = option_field(EmbedderOptions, "batch_size", gt=0, le=2048)

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
        options = self.embedder_options(model=self.model_name, batch_size=self.embed_batch_size)
        self._embedder = Embedder.from_options(options)

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

    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed documents, ``embed_batch_size`` texts per core call.

        Raises:
            TypeError: If ``texts`` is a bare string (LlamaIndex would embed each character)
                or holds a non-string (the message names its index).
        """
        return super().get_text_embedding_batch(check_texts(texts), show_progress, **kwargs)

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Async :meth:`get_text_embedding_batch`: the model runs in worker threads."""
        return await super().aget_text_embedding_batch(check_texts(texts), show_progress, **kwargs)

    def _get_query_embedding(self, query: str) -> Embedding:
        """Embed one query, with the instruction."""
        vectors = self._embedder.embed_queries([check_text(query, "query")])
        return vectors[0].tolist()  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> Embedding:
        """Embed one document."""
        return self._get_text_embeddings([check_text(text)])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        """Embed documents in one batched core call."""
        return self._embedder.embed_documents(texts).tolist()  # type: ignore[no-any-return]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        """Embed one query without blocking the event loop."""
        vectors = await self._embedder.aembed_queries([check_text(query, "query")])
        return vectors[0].tolist()  # type: ignore[no-any-return]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        """Embed one document without blocking the event loop."""
        return (await self._aget_text_embeddings([check_text(text)]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        """Embed documents in one batched core call, without blocking the event loop."""
        return (await self._embedder.aembed_documents(texts)).tolist()  # type: ignore[no-any-return]
