"""The benchmark command runs end to end (tiny models, seconds) and writes its report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.models import FIXTURES_MISSING, QWEN3_EMBEDDING_TOKENIZER, QWEN3_TOKENIZER, REPO_ROOT


def test_benchmark_cli_tiny_mode_writes_results(tmp_path: Path) -> None:
    if not QWEN3_TOKENIZER.is_dir() or not QWEN3_EMBEDDING_TOKENIZER.is_dir():
        pytest.skip(FIXTURES_MISSING)
    output = tmp_path / "RESULTS.md"
    committed = REPO_ROOT / "benchmarks" / "RESULTS.md"
    before = committed.read_bytes() if committed.exists() else None
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--tiny",
            "--output",
            str(output),
            "--cache",
            str(tmp_path / "cache"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = output.read_text()
    assert "## Embedding" in text and "## Reranking, 5 candidates" in text
    assert "## Targets (issue 6)" in text
    # the end-to-end sections ran every path (issue 14)
    assert "## Indexing a folder" in text and "## Asking a question" in text
    for path in ("qwen3-rag index", "LlamaIndex", "LangChain"):
        assert f"| {path} |" in text
    for path in ("ours (LangChain)", "ours (LlamaIndex)", "LangChain CrossEncoderReranker"):
        assert f"| {path} |" in text
    assert "## Targets (issue 14)" in text
    assert "| ours |" in text and "| official |" in text
    assert output.with_suffix(".json").exists()
    # never touches the committed report
    assert (committed.read_bytes() if committed.exists() else None) == before


def test_benchmark_help_hides_tiny_mode() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "--quick" in proc.stdout and "--tiny" not in proc.stdout
