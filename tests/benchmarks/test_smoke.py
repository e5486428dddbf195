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
        timeout=600,  # a loaded shared machine: the run itself takes ~1-4 min
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
    assert "## Re-indexing after editing one paragraph" in text
    assert "| re-index after one edit: chunks embedded <= 10 % of scratch |" in text
    assert "## Targets (issue 14)" in text
    assert "| ours |" in text and "| official |" in text
    assert "| embedder | 64 |" in text and "| reranker | 64 |" in text  # one-long-input probes
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


def test_chunking_comparison_runs() -> None:
    if not QWEN3_EMBEDDING_TOKENIZER.is_dir():
        pytest.skip(FIXTURES_MISSING)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.chunking", "--rounds", "1", "--seconds", "0.01"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "### chunk_size 512, overlap 64" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if "TextSplitter" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == "0"  # no chunk over the budget
    assert cells[-2:] == ["100%", "100.0%"]  # every chunk located, nothing dropped


def test_indexing_benchmark_runs(tmp_path: Path) -> None:
    if not QWEN3_EMBEDDING_TOKENIZER.is_dir():
        pytest.skip(FIXTURES_MISSING)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.indexing",
            "--tiny",
            "--rounds",
            "1",
            "--cache",
            str(tmp_path / "cache"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "## Indexing, tiny float32 CPU" in proc.stdout
    row = proc.stdout.strip().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    chunks, embedded_again, reused = int(cells[0]), int(cells[2]), int(cells[3])
    assert chunks >= 50 and 1 <= embedded_again <= 3 and embedded_again + reused == chunks


def test_remote_benchmark_runs_and_reports_overhead(tmp_path: Path) -> None:
    if not QWEN3_TOKENIZER.is_dir() or not QWEN3_EMBEDDING_TOKENIZER.is_dir():
        pytest.skip(FIXTURES_MISSING)
    output = tmp_path / "REMOTE.md"
    args = ["--repeats", "1", "--output", str(output), "--cache", str(tmp_path / "cache")]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.remote", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in output.read_text().splitlines() if line.startswith("| embed")]
    assert len(rows) == 3
    assert "| rerank, 16 documents per request | 4 | 64 |" in output.read_text()


def test_ray_index_benchmark_runs(tmp_path: Path) -> None:
    if not QWEN3_EMBEDDING_TOKENIZER.is_dir():
        pytest.skip(FIXTURES_MISSING)
    output = tmp_path / "RAY.md"
    args = ["--tiny", "--chunks", "8", "--layouts", "2x1", "--output", str(output)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.ray_index", *args, "--cache", str(tmp_path / "cache")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in output.read_text().splitlines() if line.startswith("| ")][2:]
    assert [r.split("|")[1].strip() for r in rows][1] == "Ray, 2 actor(s) x 1 CPU"
    assert rows[2].split("|")[1].strip().startswith("plain again")
    assert rows[0].split("|")[1].strip().startswith("plain, torch")
    diff = float(rows[1].split("|")[4])
    assert diff <= 1e-5  # the Ray index holds the plain index's vectors


def test_only_memory_prints_and_writes_only_where_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import run

    probes = {  # per 1k tokens: 25 MB at 8k; the reranker costs 4x that per token at 32k
        "embedder": [
            {"tokens": 8192, "loaded_mb": 1000.0, "peak_mb": 1204.8, "seconds": 3.0},
            {"tokens": 32768, "loaded_mb": 1000.0, "peak_mb": 1900.0, "seconds": 20.0},
        ],
        "reranker": [
            {"tokens": 8192, "loaded_mb": 1000.0, "peak_mb": 1204.8, "seconds": 3.0},
            {"tokens": 32768, "loaded_mb": 1000.0, "peak_mb": 4276.8, "seconds": 27.0},
        ],
    }
    memory = {
        "loaded_mb": 1000.0,
        "peak_mb": 1100.0,
        "weights_mb": 650.0,
        "long_tokens": 8000,
        "layers": 1,
        "long_inputs": probes,
        "process_peak_mb": 1.0,
    }
    monkeypatch.setattr(run, "memory_section", lambda settings, cache, tag: memory)
    committed = REPO_ROOT / "benchmarks" / "RESULTS.md"
    before = committed.read_bytes() if committed.exists() else None
    assert run.main(["--tiny", "--only", "memory", "--cache", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| reranker | 32,768 | 3277 MB | 100.0 MB | 27.0 |" in printed
    target = "memory per token <= 1.25x the 8,192-token one"
    assert f"| embedder, 32,768 tokens: {target} | 1.1x | met |" in printed
    assert f"| reranker, 32,768 tokens: {target} | 4x | **missed** |" in printed
    assert not list(tmp_path.glob("*.md"))  # printed only
    assert (committed.read_bytes() if committed.exists() else None) == before

    output = tmp_path / "memory.md"
    run.main(["--tiny", "--only", "memory", "--cache", str(tmp_path), "--output", str(output)])
    assert "| reranker | 32,768 | 3277 MB" in output.read_text()
    assert output.with_suffix(".json").exists()


def test_identity_benchmark_measures_a_folder(tiny_embedding_dir: Path) -> None:
    from benchmarks.identity import measure

    result = measure(tiny_embedding_dir, repeats=2)
    assert result["tensors"] == 24 and 0 < result["best_ms"] <= result["median_ms"]
    assert result["sampled_mb"] > 0 and result["folder_mb"] > 0


def test_queries_only_benchmark_measures_both_modes() -> None:
    if not QWEN3_EMBEDDING_TOKENIZER.is_dir():
        pytest.skip(FIXTURES_MISSING)
    from benchmarks import models
    from benchmarks.queries_only import one

    folder = models.build(models.CACHE / "embedding-tiny", "embedding", shape=models.TINY)
    for queries_only in (False, True):
        r = one(folder, queries_only, batch=2, steps=1, warmup=1)
        assert r["queries_only"] is queries_only
        assert r["examples_per_second"] > 0 and r["peak_mb"] > 0
