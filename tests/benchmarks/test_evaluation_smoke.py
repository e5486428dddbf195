"""``python -m benchmarks.evaluation`` runs end to end at a tiny size (seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.models import REPO_ROOT


def test_evaluation_benchmark_tiny_mode(tmp_path: Path) -> None:
    pytest.importorskip("pytrec_eval")
    output = tmp_path / "eval.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.evaluation", "--tiny", "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = output.read_text()
    assert text == proc.stdout
    assert "| bare torch matmul + top-k |" in text and "`evaluate_vectors`, block" in text
    assert "Targets (issue 11):" in text
