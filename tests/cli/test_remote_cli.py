"""The ``qwen3-rag`` command through model servers: configuration only changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen3_rag.cli import main
from tests.cli.conftest import CHUNKING
from tests.remote_server import LoopbackServer


def test_index_and_query_through_servers(
    corpus: Path,
    tmp_path: Path,
    real_embedding_dir: Path,
    real_reranker_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = str(tmp_path / "db")
    models = ["--embed-model", str(real_embedding_dir), "--rerank-model", str(real_reranker_dir)]
    with LoopbackServer(real_embedding_dir, real_reranker_dir).running() as server:
        assert (
            main(["index", str(corpus), "--db", db, "--embed-url", server.url, *models, *CHUNKING])
            == 0
        )
        assert "chunks embedded" in capsys.readouterr().out
        embedded = sum(len(b["input"]) for b in server.bodies("/v1/embeddings"))
        assert embedded > 0
        monkeypatch.setenv("QWEN3_RAG_RERANK_URL", server.url)
        question = "What is the capital of China?"
        # The collection remembers its server: no --embed-url needed.
        assert main(["query", question, "--db", db, "--json", *models]) == 0
        served = json.loads(capsys.readouterr().out)["results"]
        assert server.bodies("/rerank") and server.bodies("/v1/embeddings")[-1]["input"] == [
            f"Instruct: Given a web search query, retrieve relevant passages that answer the "
            f"query\nQuery:{question}"
        ]
    monkeypatch.delenv("QWEN3_RAG_RERANK_URL")
    # The same index, queried with local weights: the same answers.
    assert main(["query", question, "--db", db, "--json", "--embed-url", "local", *models]) == 0
    local = json.loads(capsys.readouterr().out)["results"]
    assert [r["id"] for r in served] == [r["id"] for r in local]
    for a, b in zip(served, local, strict=True):
        assert abs(a["rerank_score"] - b["rerank_score"]) <= 1e-5
        assert abs(a["vector_score"] - b["vector_score"]) <= 1e-5
