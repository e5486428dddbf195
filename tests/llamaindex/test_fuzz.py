"""Property-based fuzzing of the LlamaIndex classes: any Unicode, any list shape, wrong types.

Valid input always gives finite unit vectors / scores in [0, 1]; wrong types always raise the
documented ``TypeError`` / ``ValueError``, never another exception (and a bare string where a
list is expected is refused, where LlamaIndex would embed it one character at a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llamaindex_qwen3 import Qwen3Embedding, Qwen3Rerank
from tests.fuzzing import (
    FUZZ,
    NOT_TEXT,
    NOT_TEXTS,
    TEXT,
    TEXTS,
    assert_scores,
    assert_unit_vectors,
    quiet_warnings,
)

EMBED_MAX_LENGTH = 64
RERANK_MAX_LENGTH = 160


@pytest.fixture(autouse=True, scope="module")
def conditions(one_torch_thread: None) -> Iterator[None]:
    with quiet_warnings():
        yield


@pytest.fixture(scope="module")
def embed_model(tiny_embedding_dir: Any) -> Qwen3Embedding:
    return Qwen3Embedding(str(tiny_embedding_dir), device="cpu", max_length=EMBED_MAX_LENGTH)


@pytest.fixture(scope="module")
def rerank(tiny_reranker_dir: Any) -> Qwen3Rerank:
    return Qwen3Rerank(str(tiny_reranker_dir), device="cpu", max_length=RERANK_MAX_LENGTH, top_n=3)


def scored_nodes(texts: list[str]) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=0.5) for i, t in enumerate(texts)
    ]


# -- Qwen3Embedding ----------------------------------------------------------------------------


@settings(FUZZ, max_examples=30)
@given(query=TEXT, texts=TEXTS)
def test_embeddings_any_text(embed_model: Qwen3Embedding, query: str, texts: list[str]) -> None:
    dimension = embed_model.embedder.dimension
    assert_unit_vectors([embed_model.get_query_embedding(query)], 1, dimension)
    assert_unit_vectors(embed_model.get_text_embedding_batch(texts), len(texts), dimension)


@settings(FUZZ, max_examples=30)
@given(query=NOT_TEXT, texts=NOT_TEXTS)
def test_embedding_wrong_types_are_type_errors(
    embed_model: Qwen3Embedding, query: Any, texts: Any
) -> None:
    with pytest.raises(TypeError, match="query"):
        embed_model.get_query_embedding(query)
    with pytest.raises(TypeError, match="text"):
        embed_model.get_text_embedding(query)
    with pytest.raises(TypeError, match="texts"):
        embed_model.get_text_embedding_batch(texts)


def test_a_bare_string_is_not_embedded_character_by_character(embed_model: Qwen3Embedding) -> None:
    with pytest.raises(TypeError, match="single str"):
        embed_model.get_text_embedding_batch("one document")  # type: ignore[arg-type]


async def test_async_embedding_wrong_types_are_type_errors(embed_model: Qwen3Embedding) -> None:
    with pytest.raises(TypeError, match="single str"):
        await embed_model.aget_text_embedding_batch("one document")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="query"):
        await embed_model.aget_query_embedding(None)  # type: ignore[arg-type]


# -- Qwen3Rerank -------------------------------------------------------------------------------


@settings(FUZZ, max_examples=30)
@given(query=TEXT, texts=TEXTS)
def test_postprocess_nodes_any_text(rerank: Qwen3Rerank, query: str, texts: list[str]) -> None:
    nodes = scored_nodes(texts)
    out = rerank.postprocess_nodes(nodes, query_str=query)
    assert len(out) == min(3, len(nodes))
    scores = [n.score for n in out]
    assert_scores(scores, len(out))  # type: ignore[arg-type]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert all(n.score == 0.5 for n in nodes)  # inputs untouched


NOT_NODES = st.one_of(
    st.none(),
    st.integers(),
    TEXT,
    st.lists(TEXT, min_size=1, max_size=2),
    st.lists(st.builds(TextNode, text=TEXT), min_size=1, max_size=2),
    st.just(NodeWithScore(node=TextNode(text="a lone node"))),
    st.tuples(st.lists(TEXT, max_size=2), NOT_TEXT).map(
        lambda parts: [*scored_nodes(parts[0]), parts[1]]
    ),
)


@settings(FUZZ, max_examples=30)
@given(nodes=NOT_NODES, query=NOT_TEXT)
def test_postprocess_wrong_types_are_type_or_value_errors(
    rerank: Qwen3Rerank, nodes: Any, query: Any
) -> None:
    with pytest.raises(TypeError, match="nodes"):
        rerank.postprocess_nodes(nodes, query_str="query")
    if query is None:  # no query at all
        with pytest.raises(ValueError, match="query"):
            rerank.postprocess_nodes(scored_nodes(["a"]), query_str=query)
    else:
        with pytest.raises(TypeError, match="query_str"):
            rerank.postprocess_nodes(scored_nodes(["a"]), query_str=query)
    with pytest.raises(TypeError, match="query_bundle"):
        rerank.postprocess_nodes(scored_nodes(["a"]), query_bundle="a string")  # type: ignore[arg-type]


async def test_apostprocess_wrong_types_are_type_errors(rerank: Qwen3Rerank) -> None:
    with pytest.raises(TypeError, match="nodes"):
        await rerank.apostprocess_nodes([TextNode(text="a")], query_str="q")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="query"):
        await rerank.apostprocess_nodes(scored_nodes(["a"]))
    assert await rerank.apostprocess_nodes([], query_bundle=QueryBundle("q")) == []
