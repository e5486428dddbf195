"""``qwen3-rag check-server``: an honest server passes, a server that gets the recipe wrong fails.

The servers are the literal loopback server of tests/remote_server.py, started and stopped
here; the local side loads the same weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwen3_rag.cli import EXIT_DIFFERENT, main
from qwen3_rag.server_check import PROBE_DOCUMENTS, check_server
from tests.remote_server import LoopbackServer


@pytest.fixture(scope="module")
def honest(real_embedding_dir: Path, real_reranker_dir: Path) -> Iterator[LoopbackServer]:
    with LoopbackServer(real_embedding_dir, real_reranker_dir).running() as server:
        yield server


@pytest.fixture
def models(real_embedding_dir: Path, real_reranker_dir: Path) -> list[str]:
    return ["--embed-model", str(real_embedding_dir), "--rerank-model", str(real_reranker_dir)]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qwen3_rag._http.BACKOFF_SECONDS", 0.01)
    for name in ("QWEN3_RAG_EMBED_URL", "QWEN3_RAG_RERANK_URL", "QWEN3_RAG_EMBED_MODEL"):
        monkeypatch.delenv(name, raising=False)


def test_an_honest_server_agrees(
    honest: LoopbackServer, real_embedding_dir: Path, real_reranker_dir: Path
) -> None:
    honest.reset()
    report = check_server(
        honest.url,
        embedding_model=str(real_embedding_dir),
        reranker_model=str(real_reranker_dir),
        max_length=64,
    )
    assert report.ok
    assert report.max_abs_vector_diff is not None and report.max_abs_vector_diff <= 1e-5
    assert report.min_cosine is not None and report.min_cosine >= 1 - 1e-5
    assert report.max_abs_score_diff is not None and report.max_abs_score_diff <= 1e-5
    assert report.dimensions_accepted is True
    kinds = [p.kind for p in report.probes]
    # 3 instructions x (full size, 32) x (queries, documents); 3 instructions for reranking.
    assert kinds.count("embedding") == 12 and kinds.count("rerank") == 3
    sent = [t for body in honest.bodies("/v1/embeddings") for t in body["input"]]
    long_document = PROBE_DOCUMENTS[-1]
    assert any(long_document.startswith(t) and len(t) < len(long_document) for t in sent)
    assert any(t.startswith("Instruct: Retrieve semantically similar text\nQuery:") for t in sent)


def test_cli_table_and_json(
    honest: LoopbackServer, models: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    honest.accept_dimensions = False
    try:
        args = ["check-server", "--embed-url", honest.url, "--max-length", "48", *models]
        assert main([*args, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] is True and report["dimensions_accepted"] is False
        assert report["rerank_url"] is None and report["max_abs_score_diff"] is None
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "dimensions accepted: no (truncated here)" in out
        assert "OK: the server computes the recipe" in out
    finally:
        honest.accept_dimensions = True


def test_a_server_that_gets_the_recipe_wrong_fails(
    real_embedding_dir: Path,
    real_reranker_dir: Path,
    models: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No <|endoftext|> at the end of embedding inputs (a bad conversion), raw logits for scores.
    wrong = LoopbackServer(
        real_embedding_dir, real_reranker_dir, append_eos=False, rerank_scores="logit"
    )
    with wrong.running():
        assert main(["check-server", wrong.url, "--max-length", "96", *models]) == EXIT_DIFFERENT
    out = capsys.readouterr().out
    assert "DIFFERENT" in out
    lines = [line for line in out.splitlines() if line.endswith("  NO")]
    assert any(line.startswith("embedding") for line in lines)
    assert any(line.startswith("rerank") for line in lines)


def test_errors_are_one_line(honest: LoopbackServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-server"]) == 1
    err = capsys.readouterr().err
    assert "no server to check: pass URL, --embed-url or --rerank-url" in err
    assert main(["check-server", "--rerank-url", "http://127.0.0.1:9", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ")
    assert "cannot reach the reranking server at http://127.0.0.1:9/rerank" in err[-1]
