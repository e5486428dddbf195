from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.schema import TextNode

from llamaindex_qwen3 import Qwen3Embedding, Qwen3Rerank
from qwen3_rag import Embedder, Reranker
from tests.models import CORPUS

QUERY = "What is the capital of China?"


class CapturingHandler(BaseEventHandler):
    """Collects every instrumentation event it sees."""

    events: list[Any] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "CapturingHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def captured_events() -> Iterator[list[Any]]:
    """Events seen by a handler on the root dispatcher during the test."""
    handler = CapturingHandler()
    root = get_dispatcher()
    root.add_event_handler(handler)
    try:
        yield handler.events
    finally:
        root.event_handlers.remove(handler)


@pytest.fixture
def emb_dir(tiny_embedding_dir: Path) -> str:
    return str(tiny_embedding_dir)


@pytest.fixture
def rr_dir(tiny_reranker_dir: Path) -> str:
    return str(tiny_reranker_dir)


@pytest.fixture
def embed_model(emb_dir: str) -> Qwen3Embedding:
    return Qwen3Embedding(emb_dir)


@pytest.fixture
def core_embedder(emb_dir: str) -> Embedder:
    return Embedder(emb_dir)


@pytest.fixture
def core_reranker(rr_dir: str) -> Reranker:
    return Reranker(rr_dir)


@pytest.fixture
def rerank(rr_dir: str) -> Qwen3Rerank:
    return Qwen3Rerank(rr_dir, top_n=3)


@pytest.fixture
def nodes() -> list[TextNode]:
    return [TextNode(text=t, id_=f"n{i}") for i, t in enumerate(CORPUS)]
