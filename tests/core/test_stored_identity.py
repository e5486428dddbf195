"""A collection knows which weights made its vectors: other weights are refused, or rebuilt."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import Embedder
from qwen3_rag.chroma import Qwen3EmbeddingFunction
from qwen3_rag.errors import IdentityMismatchError
from qwen3_rag.indexing import REBUILD_SUFFIX, index_paths
from qwen3_rag.store import collection_config, open_client, open_for_search, search
from tests.models import build_model

SIZES = {"chunk_size": 48, "chunk_overlap": 8}
TEXT = "Gravity pulls bodies together.\n\nBeijing is the capital of China.\n"


@pytest.fixture
def model_dir(tmp_path: Path, tiny_embedding_dir: Path) -> Path:
    return Path(shutil.copytree(tiny_embedding_dir, tmp_path / "model"))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text(TEXT, encoding="utf-8")
    return folder


def new_weights(folder: Path, tokenizer_dir: Path) -> None:
    """Weights of the same shapes written over the old ones (what adapt --overwrite does)."""
    tmp = build_model(folder.with_name("retrained"), tokenizer_dir, kind="embedding", seed=5)
    shutil.copy(tmp / "model.safetensors", folder / "model.safetensors")


def stored_vectors(db: Path, name: str = "docs") -> dict[str, np.ndarray]:
    got = open_client(db).get_collection(name).get(include=["embeddings", "documents"])
    return {d: np.asarray(e) for d, e in zip(got["documents"], got["embeddings"], strict=True)}


def test_changed_weights_under_the_same_path_are_refused_then_rebuilt(
    tmp_path: Path, model_dir: Path, docs: Path, tiny_tokenizer_dir: Path
) -> None:
    db = tmp_path / "db"
    index_paths([docs], db=db, model=str(model_dir), **SIZES)
    before = stored_vectors(db)
    recorded = collection_config(open_client(db).get_collection("docs"))["identity"]
    assert recorded == Embedder(str(model_dir)).identity().to_dict()

    new_weights(model_dir, tiny_tokenizer_dir)
    with pytest.raises(IdentityMismatchError, match=r"weights sha256:\w+ -> sha256:\w+.*rebuild"):
        index_paths([docs], db=db, model=str(model_dir), **SIZES)
    with pytest.raises(IdentityMismatchError):
        open_for_search(open_client(db), "docs", device="cpu")
    # chromadb's own query path, through the persisted embedding function, refuses too.
    raw = open_client(db).get_collection("docs")
    with pytest.raises(IdentityMismatchError):
        raw.query(query_texts=["gravity"], n_results=1)
    for text, vector in stored_vectors(db).items():  # nothing was written
        np.testing.assert_array_equal(vector, before[text])

    stats = index_paths([docs], db=db, model=str(model_dir), rebuild=True, **SIZES)
    assert stats.chunks_embedded == len(before) and stats.chunks_reused == 0
    names = {c.name for c in open_client(db).list_collections()}
    assert names == {"docs"}  # swapped in by name, nothing left beside it
    retrained = Embedder(str(model_dir))
    for text, vector in stored_vectors(db).items():
        np.testing.assert_allclose(vector, retrained.embed_documents([text])[0], atol=1e-6)
        assert not np.allclose(vector, before[text], atol=1e-3)
    opened = open_for_search(open_client(db), "docs", device="cpu")
    assert search(opened.collection, "gravity", k=1)


def test_a_collection_without_a_record_gets_one_on_the_next_index(
    tmp_path: Path, model_dir: Path, docs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What qwen3-rag 0.2 wrote keeps working: the next index records the identity, once."""
    db = tmp_path / "db"
    old = Qwen3EmbeddingFunction(str(model_dir), device="cpu")
    collection = open_client(db).create_collection("docs", embedding_function=old)
    collection.add(ids=["x"], documents=["an old chunk"])
    assert "identity" not in collection_config(open_client(db).get_collection("docs"))

    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        open_for_search(open_client(db), "docs", device="cpu")
    assert "no record of the weights" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        index_paths([docs], db=db, model=str(model_dir), **SIZES)
    assert "recorded" in caplog.text
    stored = collection_config(open_client(db).get_collection("docs"))["identity"]
    assert stored == Embedder(str(model_dir)).identity().to_dict()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        index_paths([docs], db=db, model=str(model_dir), **SIZES)
    assert "recorded" not in caplog.text  # said once


def test_an_interrupted_rebuild_is_finished_by_the_next_run(
    tmp_path: Path, model_dir: Path, docs: Path
) -> None:
    db = tmp_path / "db"
    index_paths([docs], db=db, model=str(model_dir), **SIZES)
    client = open_client(db)
    # Interrupted between dropping the old collection and renaming the new one.
    client.get_collection("docs").modify(name=f"docs{REBUILD_SUFFIX}")
    stats = index_paths([docs], db=db, model=str(model_dir), **SIZES)
    assert stats.files_unchanged == 1  # resumed, nothing embedded again
    assert {c.name for c in open_client(db).list_collections()} == {"docs"}


def test_a_question_in_another_precision_is_allowed(
    tmp_path: Path, model_dir: Path, docs: Path
) -> None:
    db = tmp_path / "db"
    index_paths([docs], db=db, model=str(model_dir), **SIZES)
    opened = open_for_search(open_client(db), "docs", device="cpu", dtype="bfloat16")
    assert search(opened.collection, "capital of China", k=1)
    with pytest.raises(IdentityMismatchError, match="precision float32 -> bfloat16"):
        index_paths([docs], db=db, model=str(model_dir), dtype="bfloat16", **SIZES)
