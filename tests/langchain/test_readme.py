"""The README's LangChain snippet runs as written, with the tiny models at its folder paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen3_rag import Reranker
from tests.readme import link_models, python_block, readme_section


def test_readme_section_names_the_module_and_the_package_it_replaces() -> None:
    section = readme_section("## LangChain")
    assert "provides the `langchain_qwen3` module and replaces the `langchain-qwen3` package" in (
        " ".join(section.split())
    )


def test_readme_snippet_runs(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = python_block("## LangChain")
    assert '"models/Qwen3-Embedding-0.6B"' in code and '"models/Qwen3-Reranker-0.6B"' in code
    link_models(tmp_path, tiny_embedding_dir, tiny_reranker_dir)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "Beijing."
    assert len(lines) == 3
    scores = [float(line.split("  ", 1)[0]) for line in lines[1:]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    texts = namespace["texts"]
    assert isinstance(texts, list)
    # all 5 texts are candidates (k=5), so the printed pair is the core's top 2 over them
    top2 = Reranker(str(tiny_reranker_dir), device="cpu").rank(
        "What is the capital of China?", texts, top_n=2
    )
    assert [line.split("  ", 1)[1] for line in lines[1:]] == [texts[i] for i, _ in top2]
    assert (tmp_path / "chroma_db_langchain").is_dir()
