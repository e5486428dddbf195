"""Property-based fuzzing of the core: any Unicode, any list shape, wrong types.

Valid input (any strings, in any list shape) always gives finite unit vectors / scores in
[0, 1], equal to what each item gives alone; surrogate code points behave exactly as documented
(a pair is its character, a lone one U+FFFD); wrong types always raise the documented
``TypeError`` / ``ValueError`` naming the argument, never another exception.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen3_rag import PRESETS, Embedder, Reranker
from tests.fuzzing import (
    CODE_POINT,
    FUZZ,
    NOT_TEXT,
    NOT_TEXTS,
    SPECIAL,
    TEXT,
    TEXTS,
    TOP_N,
    assert_ranked,
    assert_scores,
    assert_unit_vectors,
    quiet_warnings,
    valid_top_n,
    well_formed,
)

#: Short enough that random texts run fast, long enough that most are not truncated (the
#: truncation path is fuzzed too); the 50k-character test uses the default.
EMBED_MAX_LENGTH = 64
RERANK_MAX_LENGTH = 160  # the tiny tokenizer spends ~70 tokens on the fixed template

INSTRUCTION = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(sorted(PRESETS)),
    TEXT,
    st.lists(TEXT, min_size=2, max_size=4).map(" ".join),
)


@pytest.fixture(scope="module")
def embedder(tiny_embedding_dir: Path) -> Embedder:
    return Embedder(str(tiny_embedding_dir), device="cpu", max_length=EMBED_MAX_LENGTH).load()


@pytest.fixture(scope="module")
def reranker(tiny_reranker_dir: Path) -> Reranker:
    return Reranker(str(tiny_reranker_dir), device="cpu", max_length=RERANK_MAX_LENGTH).load()


@pytest.fixture(autouse=True, scope="module")
def conditions(one_torch_thread: None) -> Iterator[None]:
    with quiet_warnings():
        yield


def alone(embed: Any, texts: list[str], dimension: int) -> np.ndarray:
    """Each text embedded in a call of its own."""
    return np.stack([embed([t])[0] for t in texts]) if texts else np.zeros((0, dimension))


# -- Embedder ----------------------------------------------------------------------------------


@settings(FUZZ, max_examples=60)
@given(texts=TEXTS)
def test_embed_documents_any_text_gives_unit_vectors_independent_of_the_batch(
    embedder: Embedder, texts: list[str]
) -> None:
    vectors = embedder.embed_documents(texts)
    assert vectors.dtype == np.float32
    assert_unit_vectors(vectors, len(texts), embedder.dimension)
    one_by_one = alone(embedder.embed_documents, texts, embedder.dimension)
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)


@settings(FUZZ, max_examples=40)
@given(texts=TEXTS, instruction=INSTRUCTION)
def test_embed_queries_any_text_and_instruction(
    embedder: Embedder, texts: list[str], instruction: str | None
) -> None:
    try:
        vectors = embedder.embed_queries(texts, instruction=instruction)
    except ValueError as exc:  # a single word that names no preset reads as a typo
        assert instruction is not None and len(instruction.split()) == 1
        assert "instruction" in str(exc)
        return
    assert_unit_vectors(vectors, len(texts), embedder.dimension)


@settings(FUZZ, max_examples=40)
@given(text=st.lists(st.one_of(st.sampled_from(SPECIAL), st.text(CODE_POINT, max_size=3))))
def test_surrogates_are_joined_in_pairs_and_otherwise_replaced(
    embedder: Embedder, text: list[str]
) -> None:
    raw = "".join(text)
    np.testing.assert_allclose(
        embedder.embed_documents([raw]), embedder.embed_documents([well_formed(raw)]), atol=1e-6
    )


def test_surrogate_rule_on_known_cases(
    embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    raw = ["a\ud800b", "\ud83d\ude00", "\ude00\ud83d", "fine", "\udcff"]
    fixed = ["a\ufffdb", "😀", "\ufffd\ufffd", "fine", "\ufffd"]
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        got = embedder.embed_documents(raw)
    np.testing.assert_allclose(got, embedder.embed_documents(fixed), atol=1e-6)
    warnings = [r for r in caplog.records if "surrogate" in r.getMessage()]
    assert len(warnings) == 1  # one per call, with the count
    assert "4 of 5 texts" in warnings[0].getMessage()


@settings(FUZZ, max_examples=20)
@given(texts=TEXTS, shape=st.sampled_from(["tuple", "numpy", "generator"]))
def test_any_sequence_or_iterable_of_strings(
    embedder: Embedder, texts: list[str], shape: str
) -> None:
    if shape == "numpy" and texts:
        container: Any = np.array(texts)  # numpy drops trailing NULs: compare with what it holds
        expected = [str(t) for t in container]
    else:
        container = tuple(texts) if shape != "generator" else (t for t in texts)
        expected = texts
    np.testing.assert_allclose(
        embedder.embed_documents(container), embedder.embed_documents(expected), atol=1e-6
    )


@settings(FUZZ, max_examples=60)
@given(texts=NOT_TEXTS)
def test_embed_wrong_types_are_type_errors_naming_texts(embedder: Embedder, texts: Any) -> None:
    for method in (embedder.embed_documents, embedder.embed_queries):
        with pytest.raises(TypeError, match="texts"):
            method(texts)


@settings(FUZZ, max_examples=20)
@given(instruction=NOT_TEXT.filter(lambda x: x is not None))
def test_embed_wrong_instruction_type_is_a_type_error(embedder: Embedder, instruction: Any) -> None:
    with pytest.raises(TypeError, match="instruction"):
        embedder.embed_queries(["q"], instruction=instruction)


def _long_text() -> str:
    """50,000 characters mixing every kind of trouble (several times the 8,192-token limit)."""
    unit = "".join(SPECIAL) + " plain words between them "
    return (unit * (50_000 // len(unit) + 1))[:50_000]


def test_a_50k_character_text_embeds_and_reranks(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = _long_text()
    assert len(text) == 50_000
    embedder = Embedder(str(tiny_embedding_dir), device="cpu")  # max_length 8192
    reranker = Reranker(str(tiny_reranker_dir), device="cpu")
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        for vectors in (embedder.embed_documents([text, "short"]), embedder.embed_queries([text])):
            assert_unit_vectors(vectors, len(vectors), embedder.dimension)
        assert_scores(reranker.score(text, [text, "short", ""]), 3)
        assert_scores(reranker.score("short", [text]), 1)
    messages = [r.getMessage() for r in caplog.records]
    assert any("truncated" in m for m in messages)
    assert any("surrogate" in m for m in messages)


# -- Reranker ----------------------------------------------------------------------------------


@settings(FUZZ, max_examples=50)
@given(query=TEXT, documents=TEXTS)
def test_score_any_text_in_unit_interval_independent_of_the_batch(
    reranker: Reranker, query: str, documents: list[str]
) -> None:
    scores = reranker.score(query, documents)
    assert_scores(scores, len(documents))
    one_by_one = [reranker.score(query, [d])[0] for d in documents]
    np.testing.assert_allclose(scores, one_by_one, atol=1e-5)


@settings(FUZZ, max_examples=40)
@given(query=TEXT, documents=TEXTS, top_n=TOP_N)
def test_rank_any_text_any_top_n(
    reranker: Reranker, query: str, documents: list[str], top_n: Any
) -> None:
    if not valid_top_n(top_n):
        with pytest.raises(ValueError, match="top_n"):
            reranker.rank(query, documents, top_n=top_n)
        return
    ranked = reranker.rank(query, documents, top_n=top_n)
    assert_ranked(ranked, len(documents), None if top_n is None else int(top_n))
    scores = reranker.score(query, documents)
    assert all(scores[i] == s for i, s in ranked)


@settings(FUZZ, max_examples=40)
@given(pairs=st.lists(st.tuples(TEXT, TEXT), max_size=6), instruction=INSTRUCTION)
def test_score_pairs_any_text(
    reranker: Reranker, pairs: list[tuple[str, str]], instruction: str | None
) -> None:
    try:
        scores = reranker.score_pairs(pairs, instruction=instruction)
    except ValueError as exc:  # "" (the reranker needs an instruction) or a one-word typo
        assert instruction is not None and len(instruction.split()) <= 1
        assert "instruction" in str(exc)
        return
    assert_scores(scores, len(pairs))
    alone_scores = [reranker.score(q, [d], instruction=instruction)[0] for q, d in pairs]
    np.testing.assert_allclose(scores, alone_scores, atol=1e-5)


@settings(FUZZ, max_examples=40)
@given(query=NOT_TEXT, documents=NOT_TEXTS)
def test_rerank_wrong_types_are_type_errors_naming_the_argument(
    reranker: Reranker, query: Any, documents: Any
) -> None:
    for method in (reranker.score, reranker.rank):
        with pytest.raises(TypeError, match="query"):
            method(query, ["doc"])
        with pytest.raises(TypeError, match="documents"):
            method("query", documents)


PAIR = st.tuples(TEXT, TEXT)
#: An item that is not a (query, document) pair of strings.
NOT_PAIR = st.one_of(
    st.none(),
    st.integers(),
    st.binary(max_size=3),
    TEXT,
    st.tuples(TEXT),
    st.tuples(TEXT, TEXT, TEXT),
    st.tuples(TEXT, NOT_TEXT),
    st.tuples(NOT_TEXT, TEXT),
    st.sets(TEXT, min_size=2, max_size=2),
    st.dictionaries(TEXT, TEXT, min_size=2, max_size=2),
)
NOT_PAIRS = st.one_of(
    st.none(),
    st.integers(),
    TEXT,
    st.binary(max_size=3),
    st.dictionaries(TEXT, TEXT, min_size=1, max_size=2),
    st.tuples(st.lists(PAIR, max_size=2), NOT_PAIR, st.lists(PAIR, max_size=2)).map(
        lambda parts: [*parts[0], parts[1], *parts[2]]
    ),
)


@settings(FUZZ, max_examples=40)
@given(pairs=NOT_PAIRS)
def test_score_pairs_wrong_types_are_type_errors_naming_pairs(
    reranker: Reranker, pairs: Any
) -> None:
    with pytest.raises(TypeError, match="pairs"):
        reranker.score_pairs(pairs)


def test_score_pairs_takes_any_iterable_of_pairs(reranker: Reranker) -> None:
    queries, docs = ["q1", "q2", "q1"], ["d1", "d2", ""]
    expected = reranker.score_pairs(list(zip(queries, docs, strict=True)))
    assert reranker.score_pairs(zip(queries, docs, strict=True)) == expected
    assert reranker.score_pairs([list(p) for p in zip(queries, docs, strict=True)]) == expected
    assert reranker.score_pairs(np.array([queries, docs]).T) == expected
