"""The README's core snippets run (hub ids swapped for the tiny local models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen3_rag import PRESETS, clear_cache, loaded_models
from tests.readme import python_block, python_blocks, readme_section


def test_core_snippets_run(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = "\n".join(python_blocks("## Use the core from Python"))
    code = code.replace('"Qwen/Qwen3-Embedding-0.6B"', repr(str(tiny_embedding_dir)))
    code = code.replace('"Qwen/Qwen3-Reranker-0.6B"', repr(str(tiny_reranker_dir)))
    assert str(tiny_embedding_dir) in code and str(tiny_reranker_dir) in code
    clear_cache()
    namespace = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[[") and out[1].startswith("[(")  # similarities, (index, score)
    assert out[2] == "['embedder', 'reranker']"  # as the comment in the snippet says
    assert loaded_models() == []  # cleared by the snippet
    small = namespace["small"]
    assert small.dimensions == 256 and small.model == str(tiny_embedding_dir)


def test_presets_section_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    section = readme_section("## Instruction presets")
    exec(compile(python_block("## Instruction presets"), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(PRESETS)
    for name in PRESETS:
        assert f"`{name}`" in section
