"""The README's core snippets run (hub ids swapped for the tiny local models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen3_rag import PRESETS
from tests.readme import python_block, readme_section


def test_core_snippet_runs(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = python_block("## Use the core from Python")
    code = code.replace('"Qwen/Qwen3-Embedding-0.6B"', repr(str(tiny_embedding_dir)))
    code = code.replace('"Qwen/Qwen3-Reranker-0.6B"', repr(str(tiny_reranker_dir)))
    assert str(tiny_embedding_dir) in code and str(tiny_reranker_dir) in code
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert out.startswith("[[") and "[(" in out  # a similarity matrix, then (index, score)


def test_presets_section_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    section = readme_section("## Instruction presets")
    exec(compile(python_block("## Instruction presets"), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(PRESETS)
    for name in PRESETS:
        assert f"`{name}`" in section
