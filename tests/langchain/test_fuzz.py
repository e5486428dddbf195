"""Property-based fuzzing of the LangChain classes: any Unicode, any list shape, wrong types.

Valid input always gives finite unit vectors / scores in [0, 1] (the core's values, converted);
wrong types always raise the documented ``TypeError`` / ``ValueError``, never another exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document

from langchain_qwen3 import Qwen3CrossEncoder, Qwen3Embeddings, Qwen3Reranker
from tests.fuzzing import (
    FUZZ,
    NOT_TEXT,
    NOT_TEXTS,
    TEXT,
    TEXTS,
    TOP_N,
    assert_scores,
    assert_unit_vectors,
    quiet_warnings,
    valid_top_n,
)

EMBED_MAX_LENGTH = 64
RERANK_MAX_LENGTH = 160


@pytest.fixture(autouse=True, scope="module")
def conditions(one_torch_thread: None) -> Iterator[None]:
    with quiet_warnings():
        yield


@pytest.fixture(scope="module")
def embeddings(emb_path: str) -> Qwen3Embeddings:
    return Qwen3Embeddings(model=emb_path, device="cpu", max_length=EMBED_MAX_LENGTH)


@pytest.fixture(scope="module")
def compressor(rr_path: str) -> Qwen3Reranker:
    return Qwen3Reranker(model=rr_path, device="cpu", max_length=RERANK_MAX_LENGTH, top_n=3)


@pytest.fixture(scope="module")
def cross_encoder(rr_path: str) -> Qwen3CrossEncoder:
    return Qwen3CrossEncoder(model=rr_path, device="cpu", max_length=RERANK_MAX_LENGTH)


def documents(texts: list[str]) -> list[Document]:
    return [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]


# -- Qwen3Embeddings ---------------------------------------------------------------------------


@settings(FUZZ, max_examples=30)
@given(text=TEXT)
def test_embed_query_any_text(embeddings: Qwen3Embeddings, text: str) -> None:
    vector = embeddings.embed_query(text)
    assert isinstance(vector, list) and all(isinstance(x, float) for x in vector)
    assert_unit_vectors([vector], 1, embeddings.embedder.dimension)
    assert vector == embeddings.embedder.embed_queries([text])[0].tolist()


@settings(FUZZ, max_examples=30)
@given(texts=TEXTS)
def test_embed_documents_any_texts(embeddings: Qwen3Embeddings, texts: list[str]) -> None:
    vectors = embeddings.embed_documents(texts)
    assert isinstance(vectors, list)
    assert_unit_vectors(vectors, len(texts), embeddings.embedder.dimension)


@settings(FUZZ, max_examples=30)
@given(text=NOT_TEXT, texts=NOT_TEXTS)
def test_embeddings_wrong_types_are_type_errors(
    embeddings: Qwen3Embeddings, text: Any, texts: Any
) -> None:
    with pytest.raises(TypeError, match="text"):
        embeddings.embed_query(text)
    with pytest.raises(TypeError, match="texts"):
        embeddings.embed_documents(texts)


# -- Qwen3Reranker -----------------------------------------------------------------------------


@settings(FUZZ, max_examples=30)
@given(query=TEXT, texts=TEXTS)
def test_compress_documents_any_text(
    compressor: Qwen3Reranker, query: str, texts: list[str]
) -> None:
    docs = documents(texts)
    out = compressor.compress_documents(docs, query)
    assert len(out) == min(3, len(docs))
    scores = [d.metadata["relevance_score"] for d in out]
    assert_scores(scores, len(out))
    assert scores == sorted(scores, reverse=True)
    for d in out:
        assert d.page_content == texts[d.metadata["i"]]
    assert all(set(d.metadata) == {"i"} for d in docs)  # inputs untouched


@settings(FUZZ, max_examples=30)
@given(query=TEXT, texts=TEXTS, top_n=TOP_N)
def test_rerank_any_top_n(
    compressor: Qwen3Reranker, query: str, texts: list[str], top_n: Any
) -> None:
    docs = documents(texts)
    if not valid_top_n(top_n):
        with pytest.raises(ValueError, match="top_n"):
            compressor.rerank(docs, query, top_n=top_n)
        return
    out = compressor.rerank(docs, query, top_n=top_n)
    assert len(out) == (len(docs) if top_n is None else min(int(top_n), len(docs)))
    assert_scores([d.metadata["relevance_score"] for d in out], len(out))


NOT_DOCUMENTS = st.one_of(
    st.none(),
    st.integers(),
    TEXT,
    st.just(Document(page_content="a lone document")),
    st.lists(TEXT, min_size=1, max_size=3),
    st.tuples(st.lists(TEXT, max_size=2), NOT_TEXT).map(
        lambda parts: [*documents(parts[0]), parts[1]]
    ),
)


@settings(FUZZ, max_examples=30)
@given(query=NOT_TEXT, docs=NOT_DOCUMENTS)
def test_compressor_wrong_types_are_type_errors(
    compressor: Qwen3Reranker, query: Any, docs: Any
) -> None:
    with pytest.raises(TypeError, match="query"):
        compressor.compress_documents(documents(["a"]), query)
    with pytest.raises(TypeError, match="documents"):
        compressor.compress_documents(docs, "query")


# -- Qwen3CrossEncoder -------------------------------------------------------------------------


@settings(FUZZ, max_examples=30)
@given(pairs=st.lists(st.tuples(TEXT, TEXT), max_size=5))
def test_cross_encoder_any_pairs(cross_encoder: Qwen3CrossEncoder, pairs: list[Any]) -> None:
    scores = cross_encoder.score(pairs)
    assert_scores(scores, len(pairs))
    expected = [cross_encoder.reranker.score(q, [d])[0] for q, d in pairs]
    np.testing.assert_allclose(scores, expected, atol=1e-5)


@settings(FUZZ, max_examples=30)
@given(
    pairs=st.one_of(
        st.none(),
        TEXT,
        st.lists(TEXT, min_size=1, max_size=2),
        st.lists(st.tuples(TEXT, NOT_TEXT), min_size=1, max_size=2),
        st.lists(st.tuples(TEXT), min_size=1, max_size=2),
    )
)
def test_cross_encoder_wrong_types_are_type_errors(
    cross_encoder: Qwen3CrossEncoder, pairs: Any
) -> None:
    with pytest.raises(TypeError, match="pairs"):
        cross_encoder.score(pairs)
