"""The README's LlamaIndex snippet runs as written, with the tiny models at its folder paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from chromadb.api.shared_system_client import SharedSystemClient
from llama_index.core import Settings

from tests.readme import link_models, python_block


def test_readme_snippet_runs(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = python_block("## LlamaIndex")
    assert '"models/Qwen3-Embedding-0.6B"' in code and '"models/Qwen3-Reranker-0.6B"' in code
    link_models(tmp_path, tiny_embedding_dir, tiny_reranker_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    saved = Settings._embed_model
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    finally:
        Settings._embed_model = saved
        SharedSystemClient.clear_system_cache()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    scores = [float(line.split()[0]) for line in lines[:3]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert lines[3] == lines[0].split("  ", 1)[1]  # the retriever's best = the engine's best
    assert (tmp_path / "chroma_db").is_dir()
