"""LangChain document compressor and cross-encoder over :class:`qwen3_rag.Reranker`."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from qwen3_rag import Ranked, Reranker, RerankerOptions
from qwen3_rag.fields import RerankerFields, option_field
from qwen3_rag.options import check_positive_int

__all__ = ["Qwen3CrossEncoder", "Qwen3Reranker"]


class _RerankerSettings(RerankerFields):
    """Model settings shared by :class:`Qwen3Reranker` and :class:`Qwen3CrossEncoder`."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        protected_namespaces=(),
        arbitrary_types_allowed=True,
    )

    model: str = option_field(RerankerOptions, "model", alias="model_name")
    batch_size: int = option_field(RerankerOptions, "batch_size")

    _reranker: Reranker = PrivateAttr()

    @model_validator(mode="after")
    def _build_reranker(self) -> _RerankerSettings:
        options = self.reranker_options(model=self.model, batch_size=self.batch_size)
        self._reranker = Reranker.from_options(options)
        return self

    @property
    def reranker(self) -> Reranker:
        """The :class:`qwen3_rag.Reranker` doing the work (shared model, lazy loading)."""
        return self._reranker


class Qwen3Reranker(_RerankerSettings, BaseDocumentCompressor):
    """Rerank retrieved documents with a local Qwen3-Reranker (0.6B / 4B / 8B).

    Each document is scored against the query as P("yes") by
    :class:`qwen3_rag.Reranker` (the published prompt template, exactly); the best ``top_n``
    come back best first, as new ``Document`` objects whose ``metadata["relevance_score"]``
    holds the score. Inputs are never modified, and documents with empty ``page_content``
    are scored like any other. Constructing it loads nothing.

    With ``long_documents="max"``, a document longer than ``max_length`` is scored by
    overlapping windows and keeps the best window's score; ``metadata["rerank_window"]``
    holds that window's ``(start, end)`` character span of ``page_content``, so a chain can
    quote ``page_content[start:end]``.

    Setup:
        Install the ``langchain`` extra of ``qwen3-rag``:

        .. code-block:: bash

            pip install "qwen3-rag[langchain]"

    Key init args:
        model: str
            Hub id or local folder (alias ``model_name``). Default
            ``"Qwen/Qwen3-Reranker-0.6B"``.
        top_n: int | None
            Documents to keep (default 3); ``None`` keeps all, reordered.
        instruction: str | Preset | None
            Preset name or one-sentence instruction text; ``None`` (default) uses
            ``"web_search"``.
        device, dtype, max_length, batch_size:
            As for :class:`qwen3_rag.Reranker`.
        long_documents, window_overlap, max_windows:
            ``"truncate"`` (default, the official recipe) or ``"max"`` (windows, best kept),
            as for :class:`qwen3_rag.Reranker`.
        base_url: str | None
            A model server (vLLM) serving ``model`` over ``/rerank`` instead of local
            weights; the prompt template is still applied here. API key from
            ``QWEN3_RAG_RERANK_API_KEY`` (or the variable ``api_key_env`` names).

    Instantiate:
        .. code-block:: python

            from langchain_qwen3 import Qwen3Reranker

            reranker = Qwen3Reranker(model="/models/Qwen3-Reranker-0.6B", top_n=3)

    Rerank:
        .. code-block:: python

            from langchain_core.documents import Document

            docs = [Document(page_content="Gravity attracts masses."),
                    Document(page_content="Beijing is the capital of China.")]
            best = reranker.compress_documents(docs, "What is the capital of China?")
            best[0].metadata["relevance_score"]

        Inside ``langchain_classic``'s ``ContextualCompressionRetriever``:

        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever

            retriever = ContextualCompressionRetriever(
                base_compressor=reranker,
                base_retriever=vectorstore.as_retriever(search_kwargs={"k": 30}),
            )
            retriever.invoke("What is the capital of China?")

    Async:
        .. code-block:: python

            best = await reranker.acompress_documents(docs, "What is the capital of China?")

    Example:
        >>> from langchain_qwen3 import Qwen3Reranker
        >>> reranker = Qwen3Reranker(model="Qwen/Qwen3-Reranker-0.6B", top_n=2)
        >>> reranker.top_n
        2
    """

    top_n: int | None = Field(
        default=3, description="Documents to return, best first; None returns all of them."
    )

    @field_validator("top_n")
    @classmethod
    def _check_top_n(cls, value: int | None) -> int | None:
        if value is not None:
            check_positive_int(value, "top_n")
        return value

    def rerank(
        self, documents: Sequence[Document], query: str, *, top_n: int | None
    ) -> list[Document]:
        """Score ``documents`` against ``query`` and return the best ``top_n``, best first.

        Args:
            documents: Candidate documents (not modified).
            query: The query.
            top_n: Documents to return; ``None`` returns all of them.

        Returns:
            Copies of the best documents with ``metadata["relevance_score"]`` set; ties keep
            input order.

        Raises:
            TypeError: If an item of ``documents`` is not a ``Document`` (names the index) or
                ``query`` is not a string.
            ValueError: If ``top_n`` is not ``None`` or a positive integer.

        Example:
            >>> from langchain_core.documents import Document
            >>> rr = Qwen3Reranker(model="Qwen/Qwen3-Reranker-0.6B")
            >>> docs = [Document(page_content="Beijing.")]
            >>> rr.rerank(docs, "capital?", top_n=1)  # doctest: +SKIP
            [Document(metadata={'relevance_score': 0.9...}, page_content='Beijing.')]
        """
        texts = _page_contents(documents)
        return _rescored(documents, self._reranker.rank(query, texts, top_n=top_n))

    async def arerank(
        self, documents: Sequence[Document], query: str, *, top_n: int | None
    ) -> list[Document]:
        """Async :meth:`rerank`, never blocking the event loop.

        With ``base_url`` the requests are sent from the event loop (``httpx``); local
        inference runs in a worker thread.
        """
        texts = _page_contents(documents)
        return _rescored(documents, await self._reranker.arank(query, texts, top_n=top_n))

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Return the best ``top_n`` documents for ``query``, best first, with scores.

        Args:
            documents: The retrieved documents (not modified).
            query: The query.
            callbacks: Accepted for the interface; reranking emits no callback events.

        Returns:
            New documents with ``metadata["relevance_score"]`` (P("yes"), in [0, 1]).
        """
        return self.rerank(documents, query, top_n=self.top_n)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`, never blocking the event loop."""
        return await self.arerank(documents, query, top_n=self.top_n)


class Qwen3CrossEncoder(_RerankerSettings, BaseCrossEncoder):
    """A LangChain ``BaseCrossEncoder`` scoring pairs with a local Qwen3-Reranker.

    For code built on the classic ``CrossEncoderReranker``; new code can use
    :class:`Qwen3Reranker` directly. ``score`` returns P("yes") for each pair, in order.

    Setup:
        .. code-block:: bash

            pip install "qwen3-rag[langchain]"

    Key init args:
        model: str
            Hub id or local folder (alias ``model_name``). Default
            ``"Qwen/Qwen3-Reranker-0.6B"``.
        instruction, device, dtype, max_length, batch_size:
            As for :class:`Qwen3Reranker`.

    Instantiate:
        .. code-block:: python

            from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
            from langchain_qwen3 import Qwen3CrossEncoder

            encoder = Qwen3CrossEncoder(model="/models/Qwen3-Reranker-0.6B")
            compressor = CrossEncoderReranker(model=encoder, top_n=3)

    Rerank:
        .. code-block:: python

            encoder.score([("capital of China?", "Beijing is the capital of China."),
                           ("capital of China?", "Gravity attracts masses.")])

    Async:
        ``CrossEncoderReranker`` scores in a worker thread through its ``acompress_documents``.

    Example:
        >>> from langchain_qwen3 import Qwen3CrossEncoder
        >>> encoder = Qwen3CrossEncoder(model="Qwen/Qwen3-Reranker-0.6B")
        >>> encoder.score([("capital?", "Beijing is the capital.")])  # doctest: +SKIP
        [0.99...]
    """

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        """Relevance P("yes") of each ``(query, document)`` pair, in input order.

        Args:
            text_pairs: ``(query, document)`` pairs; queries may differ.

        Returns:
            One score in [0, 1] per pair.

        Raises:
            TypeError: If ``text_pairs`` is not a list of two-string pairs (names the index).
        """
        return self._reranker.score_pairs(text_pairs)


def _page_contents(documents: Sequence[Document]) -> list[str]:
    """The texts to score, or a ``TypeError`` naming a bad item."""
    if isinstance(documents, (str, Document)) or not isinstance(documents, Sequence):
        raise TypeError("documents must be a list of Document objects")
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise TypeError(f"documents[{i}] must be a Document, not {type(doc).__name__}")
    return [doc.page_content for doc in documents]


def _rescored(documents: Sequence[Document], ranked: list[Ranked]) -> list[Document]:
    """Copies of the ranked documents, best first, with ``metadata["relevance_score"]``.

    With ``long_documents="max"`` also ``metadata["rerank_window"]``: the ``(start, end)``
    character span of ``page_content`` whose window scored best.
    """
    out = []
    for r in ranked:
        i, score = r
        metadata = {**documents[i].metadata, "relevance_score": score}
        if r.window is not None:
            metadata["rerank_window"] = r.window
        out.append(documents[i].model_copy(update={"metadata": metadata}))
    return out
