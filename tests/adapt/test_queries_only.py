"""Adapt the query side only: an index built before adaptation is used as it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qwen3_rag import Embedder, clear_cache
from qwen3_rag.adapt import adapt
from qwen3_rag.identity import adapted_from
from qwen3_rag.indexing import index_paths
from qwen3_rag.loading import ModelSource
from qwen3_rag.store import open_client, open_for_search, search, set_query_model
from tests.adapt.conftest import run_settings, single_thread
from tests.adapt.fakes import FakeLLM, write_corpus


def stored(db: Path) -> tuple[list[str], bytes]:
    got = open_client(db).get_collection("docs").get(include=["embeddings"])
    order = np.argsort(got["ids"])
    return sorted(got["ids"]), np.asarray(got["embeddings"])[order].tobytes()


def test_query_only_adaptation_improves_retrieval_on_the_untouched_index(
    tmp_path: Path, tiny_embedding_dir: Path
) -> None:
    settings = run_settings(tiny_embedding_dir)
    corpus = write_corpus(tmp_path / "docs", 100)
    db = tmp_path / "db"
    with single_thread():
        index_paths(
            [corpus], db=db, model=str(tiny_embedding_dir), chunk_size=200, chunk_overlap=10
        )
        before = stored(db)
        summary = adapt(
            [corpus], llm=FakeLLM(), out=tmp_path / "out", queries_only=True, **settings
        )  # type: ignore[arg-type]
    ev = summary.stages["evaluate"]
    assert ev["after"]["nDCG@10"] - ev["before"]["nDCG@10"] >= 0.05, ev
    assert ev["significant"]
    assert summary.model is not None
    base = Embedder(str(tiny_embedding_dir)).identity()
    assert adapted_from(ModelSource(str(summary.model))) == base.__class__(base.weights)

    set_query_model(open_client(db), "docs", str(summary.model))
    assert stored(db) == before  # byte-identical: nothing re-embedded
    clear_cache()
    opened = open_for_search(open_client(db), "docs", device="cpu")
    assert opened.embedding_function.embedder.query_side.model == str(summary.model)
    assert search(opened.collection, "a question", k=3)
