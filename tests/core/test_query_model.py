"""Queries by an adapted model, documents by its base: stored vectors stay valid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import Embedder
from qwen3_rag.errors import QueryModelError
from qwen3_rag.identity import ADAPT_METADATA
from qwen3_rag.indexing import index_paths
from qwen3_rag.store import (
    collection_config,
    open_client,
    open_for_search,
    search,
    set_query_model,
)
from tests.models import build_model


def adapted_copy(base: Path, tokenizer_dir: Path, dest: Path, *, seed: int = 3) -> Path:
    """Other weights of the same shapes that record `base` as what they were adapted from."""
    build_model(dest, tokenizer_dir, kind="embedding", seed=seed)
    record = {"kind": "embedding", "base_identity": Embedder(str(base)).identity().to_dict()}
    (dest / ADAPT_METADATA).write_text(json.dumps(record))
    return dest


@pytest.fixture
def base(tmp_path: Path, tiny_embedding_dir: Path) -> Path:
    return Path(shutil.copytree(tiny_embedding_dir, tmp_path / "base"))


@pytest.fixture
def adapted(base: Path, tiny_tokenizer_dir: Path, tmp_path: Path) -> Path:
    return adapted_copy(base, tiny_tokenizer_dir, tmp_path / "adapted")


QUERIES = ["capital of China?", "what is gravity"]
DOCS = ["Beijing is the capital of China.", "Gravity attracts bodies."]


def test_queries_by_the_query_model_documents_by_the_base(base: Path, adapted: Path) -> None:
    pair = Embedder(str(base), query_model=str(adapted))
    np.testing.assert_array_equal(
        pair.embed_queries(QUERIES), Embedder(str(adapted)).embed_queries(QUERIES)
    )
    np.testing.assert_array_equal(
        pair.embed_documents(DOCS), Embedder(str(base)).embed_documents(DOCS)
    )
    assert not np.allclose(pair.embed_queries(QUERIES), Embedder(str(base)).embed_queries(QUERIES))
    assert pair.identity() == Embedder(str(base)).identity()
    assert pair.query_identity() == Embedder(str(adapted)).identity()
    assert Embedder(str(base), query_model=str(base)).options.query_model is None


async def test_async_queries_go_to_the_query_model(base: Path, adapted: Path) -> None:
    pair = Embedder(str(base), query_model=str(adapted))
    got = await pair.aembed_queries(QUERIES)
    np.testing.assert_array_equal(got, Embedder(str(adapted)).embed_queries(QUERIES))


def test_a_query_model_of_another_base_is_refused(
    base: Path, tiny_tokenizer_dir: Path, tmp_path: Path
) -> None:
    other = build_model(tmp_path / "other-base", tiny_tokenizer_dir, kind="embedding", seed=8)
    stranger = adapted_copy(other, tiny_tokenizer_dir, tmp_path / "stranger")
    with pytest.raises(QueryModelError, match="was adapted from weights"):
        Embedder(str(base), query_model=str(stranger)).embed_queries(QUERIES)
    unrecorded = build_model(tmp_path / "unrecorded", tiny_tokenizer_dir, kind="embedding", seed=4)
    with pytest.raises(QueryModelError, match="no record of the model it was adapted from"):
        Embedder(str(base), query_model=str(unrecorded)).embed_queries(QUERIES)


def test_a_collection_takes_the_query_model_with_nothing_re_embedded(
    base: Path, adapted: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("\n\n".join(DOCS) + "\n", encoding="utf-8")
    db = tmp_path / "db"
    index_paths([docs], db=db, model=str(base), chunk_size=16, chunk_overlap=0)
    before = open_client(db).get_collection("docs").get(include=["embeddings"])

    set_query_model(open_client(db), "docs", str(adapted))
    after = open_client(db).get_collection("docs").get(include=["embeddings"])
    assert before["ids"] == after["ids"]
    assert np.asarray(before["embeddings"]).tobytes() == np.asarray(after["embeddings"]).tobytes()
    assert collection_config(open_client(db).get_collection("docs"))["query_model"] == str(adapted)

    opened = open_for_search(open_client(db), "docs", device="cpu")
    assert opened.embedding_function.embedder.query_side.model == str(adapted)
    hits = search(opened.collection, "capital of China?", k=2)
    want = Embedder(str(adapted)).embed_queries(["capital of China?"])[0]
    stored = Embedder(str(base)).embed_documents([h.text for h in hits])
    np.testing.assert_allclose([h.vector_score for h in hits], stored @ want, atol=1e-5)

    # Indexing afterwards still embeds documents with the base model, into the same vectors.
    (docs / "b.md").write_text("Paris is the capital of France.\n", encoding="utf-8")
    stats = index_paths([docs], db=db, chunk_size=16, chunk_overlap=0)
    assert stats.files_changed == 1
    got = (
        open_client(db)
        .get_collection("docs")
        .get(where={"source": str(docs / "b.md")}, include=["embeddings", "documents"])
    )
    np.testing.assert_allclose(
        got["embeddings"][0], Embedder(str(base)).embed_documents(got["documents"])[0], atol=1e-6
    )


def test_a_collection_refuses_a_query_model_of_another_base(
    base: Path, tiny_tokenizer_dir: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(DOCS[0] + "\n", encoding="utf-8")
    db = tmp_path / "db"
    index_paths([docs], db=db, model=str(base), chunk_size=16, chunk_overlap=0)
    other = build_model(tmp_path / "other-base", tiny_tokenizer_dir, kind="embedding", seed=8)
    stranger = adapted_copy(other, tiny_tokenizer_dir, tmp_path / "stranger")
    with pytest.raises(QueryModelError):
        set_query_model(open_client(db), "docs", str(stranger))
    assert "query_model" not in collection_config(open_client(db).get_collection("docs"))
