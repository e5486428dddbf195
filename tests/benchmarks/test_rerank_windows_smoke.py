"""``python -m benchmarks.rerank_windows`` runs end to end on a tiny model (seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.models import FIXTURES_MISSING, QWEN3_TOKENIZER, REPO_ROOT


def test_rerank_windows_benchmark_tiny_mode(tmp_path: Path) -> None:
    if not QWEN3_TOKENIZER.is_dir():
        pytest.skip(FIXTURES_MISSING)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n")
    command = [
        sys.executable, "-m", "benchmarks.rerank_windows", "--tiny", "--candidates", "2",
        "--tokens", "1500", "--cache", str(tmp_path / "cache"), "--results", str(results),
    ]  # fmt: skip
    for _ in range(2):  # the second run replaces its section, never adds another
        proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\n## Other\n\nkept\n")
    assert text.count("## Reranking long documents: windows vs truncation") == 1
    assert "| truncate | 2 |" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| max (windows) |")]
    assert int(row.split("|")[2]) >= 6  # 1,500 tokens at max_length=512: several windows each
    assert "usable cores" in text and "load average" in text
    assert proc.stdout in text
