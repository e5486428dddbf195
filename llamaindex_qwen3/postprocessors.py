"""Qwen3-Reranker as a LlamaIndex node postprocessor."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_validator
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from qwen3_rag import Ranked, Reranker, RerankerOptions
from qwen3_rag.fields import RerankerFields, option_field
from qwen3_rag.options import DEFAULT_RERANKER_MODEL, check_positive_int, check_text

__all__ = ["RERANK_WINDOW", "Qwen3Rerank"]

#: The node metadata key of the winning window's character span (``long_documents="max"``).
RERANK_WINDOW = "rerank_window"

dispatcher = get_dispatcher(__name__)


class Qwen3Rerank(RerankerFields, BaseNodePostprocessor):
    """Local Qwen3-Reranker for LlamaIndex: rescore retrieved nodes, keep the best ``top_n``.

    Each node's text (``get_content(metadata_mode=MetadataMode.EMBED)``, as LlamaIndex's
    built-in rerankers use) is scored against the query by :class:`qwen3_rag.Reranker`; the
    result is new :class:`NodeWithScore` objects, best first, whose score is the reranker's
    P(yes) in [0, 1]. Nodes with empty text are scored like any other. With
    ``long_documents="max"`` a node longer than ``max_length`` is scored by overlapping
    windows, keeps the best window's score, and its copy's ``metadata["rerank_window"]``
    holds that window's ``(start, end)`` character span of the text that was scored
    (``node.get_content(metadata_mode=MetadataMode.EMBED)``: the node's text when it has no
    metadata shown to embeddings); the key is hidden from the LLM and embedding views.
    Like the built-in rerankers it emits the instrumentation events ``ReRankStartEvent`` /
    ``ReRankEndEvent`` and the callback manager's ``CBEventType.RERANKING`` event.
    Constructing it loads nothing; the async path runs the model in a worker thread, off the
    event loop (with ``base_url``, a model server, it sends its requests from the event loop).

    ``top_n`` and ``keep_retrieval_score`` are read at each call; the other fields build the
    core object at construction, so to change one construct a new object (the loaded model
    is shared, so this is cheap).

    Install with ``pip install "qwen3-rag[llamaindex]"``.

    Args:
        model: Hugging Face hub id or local folder of a Qwen3-Reranker model.
        **kwargs: Any other field of this class (``top_n``, ``keep_retrieval_score``,
            ``instruction``, ``device``, ``dtype``, ``max_length``, ``batch_size``,
            ``max_batch_tokens``, ``revision``, ``cache_dir``, ``local_files_only``,
            ``quantize``, ``show_progress``, ``long_documents``, ``window_overlap``,
            ``max_windows``; the same types and defaults as
            :class:`qwen3_rag.RerankerOptions`).

    Raises:
        ValueError: If ``top_n`` is not ``None`` or a positive integer (a pydantic
            ``ValidationError``, which is a ``ValueError``), or the core rejects a value.

    Example:
        >>> from llamaindex_qwen3 import Qwen3Rerank
        >>> rerank = Qwen3Rerank("Qwen/Qwen3-Reranker-0.6B", top_n=3)  # loads nothing
        >>> engine = index.as_query_engine(  # doctest: +SKIP
        ...     similarity_top_k=20, node_postprocessors=[rerank]
        ... )
    """

    model: str = option_field(RerankerOptions, "model")
    batch_size: int = option_field(RerankerOptions, "batch_size")
    top_n: int | None = Field(
        default=3, description="Number of best nodes to return; None returns all, reordered."
    )
    keep_retrieval_score: bool = Field(
        default=False,
        description=(
            "Keep each node's retrieval score in metadata['retrieval_score'] (on a copy of "
            "the node; the input nodes are not modified)."
        ),
    )

    _reranker: Reranker = PrivateAttr()

    def __init__(self, model: str = DEFAULT_RERANKER_MODEL, **kwargs: Any) -> None:
        kwargs["model"] = model
        super().__init__(**kwargs)
        options = self.reranker_options(model=self.model, batch_size=self.batch_size)
        self._reranker = Reranker.from_options(options)

    @field_validator("top_n")
    @classmethod
    def _check_top_n(cls, value: int | None) -> int | None:
        return None if value is None else check_positive_int(value, "top_n")

    @classmethod
    def class_name(cls) -> str:
        """Name under which LlamaIndex serialises this class."""
        return "Qwen3Rerank"

    @property
    def reranker(self) -> Reranker:
        """The :class:`qwen3_rag.Reranker` this class delegates to."""
        return self._reranker

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._inputs(nodes, query_bundle)
        with self._reranking(nodes, query_bundle) as out:
            out.extend(self._rescored(nodes, self._rank(query, texts)))
        return out

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._inputs(nodes, query_bundle)
        with self._reranking(nodes, query_bundle) as out:
            ranked = await self._reranker.arank(query, texts, top_n=self.top_n)
            out.extend(self._rescored(nodes, ranked))
        return out

    # -- type conversion ---------------------------------------------------------------------

    @staticmethod
    def _inputs(
        nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[str, list[str]]:
        """The query and the node texts, or a ``ValueError``/``TypeError`` naming the argument."""
        if query_bundle is None:
            raise ValueError(
                "Qwen3Rerank needs the query: call postprocess_nodes(nodes, query_bundle=...) "
                "or postprocess_nodes(nodes, query_str=...)"
            )
        if not isinstance(query_bundle, QueryBundle):
            hint = " (pass a string as query_str=...)" if isinstance(query_bundle, str) else ""
            raise TypeError(
                f"query_bundle must be a QueryBundle, not {type(query_bundle).__name__}{hint}"
            )
        query = check_text(query_bundle.query_str, "query_str")
        if isinstance(nodes, (str, NodeWithScore)) or not isinstance(nodes, Sequence):
            raise TypeError(f"nodes must be a list of NodeWithScore, not {type(nodes).__name__}")
        for i, n in enumerate(nodes):
            if not isinstance(n, NodeWithScore):
                hint = " (wrap it: NodeWithScore(node=node))" if isinstance(n, BaseNode) else ""
                raise TypeError(f"nodes[{i}] must be a NodeWithScore, not {type(n).__name__}{hint}")
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        return query, texts

    def _rank(self, query: str, texts: list[str]) -> list[Ranked]:
        return self._reranker.rank(query, texts, top_n=self.top_n)

    def _rescored(self, nodes: list[NodeWithScore], ranked: list[Ranked]) -> list[NodeWithScore]:
        out: list[NodeWithScore] = []
        for r in ranked:
            i, score = r
            node = nodes[i].node
            metadata = dict(node.metadata)
            if self.keep_retrieval_score:
                metadata["retrieval_score"] = nodes[i].score
            if r.window is not None:
                metadata[RERANK_WINDOW] = r.window
            if metadata != node.metadata:
                node = node.model_copy(update={"metadata": metadata, **_hidden(node, metadata)})
            out.append(NodeWithScore(node=node, score=score))
        return out

    @contextmanager
    def _reranking(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> Iterator[list[NodeWithScore]]:
        """Emit the start/end events around the block, which fills the yielded list."""
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle,
                nodes=nodes,
                top_n=self.top_n if self.top_n is not None else len(nodes),
                model_name=self.model,
            )
        )
        out: list[NodeWithScore] = []
        payload: dict[str, Any] = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query_bundle.query_str if query_bundle else None,
            EventPayload.TOP_K: self.top_n,
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            yield out
            event.on_end(payload={EventPayload.NODES: out})
        dispatcher.event(ReRankEndEvent(nodes=out))


def _hidden(node: BaseNode, metadata: dict[str, Any]) -> dict[str, list[str]]:
    """The node's excluded-key lists, with :data:`RERANK_WINDOW` hidden from both views."""
    if RERANK_WINDOW not in metadata:
        return {}
    return {
        key: [*(k for k in getattr(node, key) if k != RERANK_WINDOW), RERANK_WINDOW]
        for key in ("excluded_llm_metadata_keys", "excluded_embed_metadata_keys")
    }
