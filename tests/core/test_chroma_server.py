"""A Chroma server (``chroma run``) holds the same collections as the embedded store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import store
from qwen3_rag.indexing import index_paths
from tests.chroma_server import free_port
from tests.cli.conftest import write_corpus

SETTINGS = {"instruction": "code_search", "dimensions": 32}
SIZES = {"chunk_size": 40, "chunk_overlap": 8, "batch_size": 4}


def records(collection: object) -> dict[str, tuple[str, dict[str, object], np.ndarray]]:
    got = collection.get(include=["documents", "metadatas", "embeddings"])  # type: ignore[attr-defined]
    return {
        i: (d, dict(m), np.asarray(e, dtype=np.float32))
        for i, d, m, e in zip(
            got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
        )
    }


def test_server_collection_matches_the_embedded_one(
    chroma_url: str, tiny_embedding_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    docs = write_corpus(tmp_path / "docs")
    model = str(tiny_embedding_dir)
    client = store.connect(chroma_url)
    served = index_paths([docs], client=client, collection="same", model=model, **SETTINGS, **SIZES)
    local = index_paths(
        [docs], db=tmp_path / "db", collection="same", model=model, **SETTINGS, **SIZES
    )
    assert served.chunks_embedded == local.chunks_embedded == served.chunks_stored > 5
    assert not (tmp_path / "qwen3_db").exists()  # no store folder, no lock file: a server
    embedded = store.open_client(tmp_path / "db").get_collection("same")
    # A fresh client, as another process would open it: the settings came back from the server.
    on_server = store.connect(chroma_url).get_collection("same")
    assert store.collection_config(on_server) == store.collection_config(embedded)
    config = store.collection_config(on_server)
    assert (config["model"], config["instruction"], config["dimensions"]) == (
        model,
        "code_search",
        32,
    )
    a, b = records(on_server), records(embedded)
    assert a.keys() == b.keys()
    for id_ in a:
        assert a[id_][:2] == b[id_][:2]
        assert np.abs(a[id_][2] - b[id_][2]).max() <= 1e-6

    # Incremental over HTTP: a second run embeds nothing.
    again = index_paths([docs], client=store.connect(chroma_url), collection="same", **SIZES)
    assert (again.chunks_embedded, again.files_unchanged, again.chunks_stored) == (
        0,
        3,
        served.chunks_stored,
    )
    # The stored settings are enforced, as in an embedded store.
    with pytest.raises(store.ConfigMismatchError, match="dimensions 32"):
        index_paths([docs], client=store.connect(chroma_url), collection="same", dimensions=48)

    # Questions through the server: the collection's instruction, the same hits.
    question = "What is the capital of China?"
    hits = store.search(store.open_for_search(client, "same").collection, question, k=3)
    expected = store.search(
        store.open_for_search(store.open_client(tmp_path / "db"), "same").collection, question, k=3
    )
    assert [h.id for h in hits] == [h.id for h in expected]
    assert [h.vector_score for h in hits] == pytest.approx(
        [h.vector_score for h in expected], abs=1e-5
    )


def test_connect_errors() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(store.StoreError, match=f"no Chroma server answers at {down}"):
        store.connect(down)
    for bad in ("ftp://host:1", "http://host:notaport", "http://host:8000/some/path"):
        with pytest.raises(store.StoreError, match="is not a Chroma server URL"):
            store.connect(bad)
