"""The command's three wrong-number flows end in one line: changed weights, swapped models,
and an adapted query model recorded on an existing index (nothing re-embedded)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import langchain_qwen3.llm
from qwen3_rag import cli
from qwen3_rag.store import collection_config, open_client
from tests.adapt.conftest import single_thread
from tests.adapt.fakes import FakeLLM, write_corpus
from tests.cli.test_adapt import FAST
from tests.models import build_model

CHUNKS = ["--chunk-size", "64", "--chunk-overlap", "8", "-q"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with single_thread():
        yield


def one_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 1
    lines = [x for x in capsys.readouterr().err.strip().splitlines() if x.startswith("error: ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_changed_weights_are_refused_in_one_line_then_rebuilt(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_tokenizer_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = str(shutil.copytree(tiny_embedding_dir, tmp_path / "model"))
    docs = write_corpus(tmp_path / "docs", 4)
    db = str(tmp_path / "db")
    assert cli.main(["index", str(docs), "--db", db, "--embed-model", model, *CHUNKS]) == 0
    retrained = build_model(tmp_path / "retrained", tiny_tokenizer_dir, kind="embedding", seed=9)
    shutil.copy(retrained / "model.safetensors", Path(model) / "model.safetensors")

    said = one_error(capsys, "index", str(docs), "--db", db, "--embed-model", model, *CHUNKS)
    assert "other weights" in said and "--rebuild" in said and "sha256:" in said
    said = one_error(capsys, "query", "a question", "--db", db, "--no-rerank", "-q")
    assert "other weights" in said and "--rebuild" in said

    argv = ["index", str(docs), "--db", db, "--embed-model", model, "--rebuild", *CHUNKS]
    assert cli.main(argv) == 0
    assert "0 reused" in capsys.readouterr().out
    assert cli.main(["query", "a question", "--db", db, "--no-rerank", "-q"]) == 0


def test_swapped_models_are_one_line_naming_both_flags(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = write_corpus(tmp_path / "docs", 2)
    db = str(tmp_path / "db")
    said = one_error(
        capsys, "index", str(docs), "--db", db, "--embed-model", str(tiny_reranker_dir), *CHUNKS
    )
    assert "not an embedding model" in said and "swapped" in said and "--embed-model" in said
    assert cli.main(["index", str(docs), "--db", db, "--embed-model", str(tiny_embedding_dir),
                     *CHUNKS]) == 0  # fmt: skip
    said = one_error(
        capsys, "query", "a question", "--db", db, "--rerank-model", str(tiny_embedding_dir), "-q"
    )
    assert "not a reranker" in said and "--rerank-model" in said


def test_adapt_queries_only_records_the_query_model_on_an_existing_index(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(langchain_qwen3.llm, "llm_from_spec", lambda spec: FakeLLM())
    corpus = write_corpus(tmp_path / "docs", 20)
    db = str(tmp_path / "db")
    base = str(tiny_embedding_dir)
    assert cli.main(["index", str(corpus), "--db", db, "--embed-model", base, *CHUNKS]) == 0
    before = open_client(db).get_collection("docs").get(include=["embeddings"])

    out = tmp_path / "adapted"
    argv = ["adapt", str(corpus), "--llm", "fake:model", "--out", str(out), "--embed-model", base]
    said = one_error(capsys, *argv, "--db", db, *FAST)  # a full adaptation: refused
    assert "--queries-only" in said
    assert cli.main([*argv, "--queries-only", "--db", db, *FAST]) == 0
    after = open_client(db).get_collection("docs").get(include=["embeddings"])
    assert before["ids"] == after["ids"]
    assert np.asarray(before["embeddings"]).tobytes() == np.asarray(after["embeddings"]).tobytes()
    stored = collection_config(open_client(db).get_collection("docs"))
    assert stored["query_model"] == str(out / "model") and stored["model"] == base
    capsys.readouterr()
    assert cli.main(["query", "a question", "--db", db, "--no-rerank", "--json", "-q"]) == 0


def test_query_reads_long_documents_by_windows_and_says_which(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "long.md").write_text(" ".join(["Gravity pulls bodies together."] * 40) + "\n")
    db = str(tmp_path / "db")
    argv = ["index", str(docs), "--db", db, "--embed-model", str(tiny_embedding_dir)]
    assert cli.main([*argv, "--chunk-size", "400", "--chunk-overlap", "0", "-q"]) == 0
    capsys.readouterr()
    ask = ["query", "gravity", "--db", db, "--rerank-model", str(tiny_reranker_dir), "--json"]
    ask += ["--rerank-max-length", "200", "--window-overlap", "8", "-q"]
    assert cli.main([*ask, "--long-documents", "max", "--max-windows", "3"]) == 0
    (hit,) = json.loads(capsys.readouterr().out)["results"][:1]
    start, end = hit["window"]
    assert 0 <= start < end <= len(hit["text"]) and end - start < len(hit["text"])
    assert cli.main(ask) == 0  # the recipe: truncated, no window
    assert json.loads(capsys.readouterr().out)["results"][0]["window"] is None
