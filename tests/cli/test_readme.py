"""The README's Chroma snippet runs as written, with the tiny model at its folder path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models import REPO_ROOT
from tests.readme import link_models, python_block, readme_section


def test_readme_chroma_snippet_runs(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = python_block("### Chroma from Python")
    assert '"models/Qwen3-Embedding-0.6B"' in code
    link_models(tmp_path, tiny_embedding_dir)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[[") and lines[1].startswith("[[")


def test_readme_indexing_snippet_runs(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = python_block("### Indexing from Python")
    link_models(tmp_path, tiny_embedding_dir, tiny_reranker_dir)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "capitals.md").write_text(
        "# Capitals\n\nThe capital of China is Beijing.\n\nParis is the capital of France.\n"
    )
    (notes / "physics.txt").write_text("Gravity attracts two bodies towards each other.\n")
    monkeypatch.chdir(tmp_path)
    for run in ("first", "again"):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 3
        if run == "first":
            assert lines[0] == "2 chunks embedded, 0 files unchanged"
        else:  # incremental: the second run finds nothing to do
            assert lines[0] == "0 chunks embedded, 2 files unchanged"
        for line in lines[1:]:
            score, where = line.split()
            assert 0.0 <= float(score) <= 1.0
            path, start = where.rsplit(":", 1)
            assert Path(path).parent == notes and int(start) >= 1


def test_readme_quick_start_and_cli_section() -> None:
    quick = readme_section("## Quick start")
    assert quick.index("make demo") < quick.index("make test")
    for text in ("Qwen/Qwen3-Embedding-0.6B", "Qwen/Qwen3-Reranker-0.6B", "QWEN3_RAG_EMBED_MODEL"):
        assert text in quick
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "demo: $(STAMP)" in makefile
    cli = readme_section("## The `qwen3-rag` command")
    for flag in ("--db", "--fetch-k", "--no-rerank", "--json", "--embed-model", "--dimensions"):
        assert flag in cli
    for text in ("semantic-text-splitter", "waiting for it to finish", "index_paths"):
        assert text in cli
