"""The README's adaptation section: its Python snippet runs, its flags exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import langchain_qwen3
from qwen3_rag import clear_cache
from qwen3_rag.cli import build_parser
from tests.adapt.fakes import FakeLLM, write_corpus
from tests.readme import link_models, python_block, readme_section

SECTION = "## Adapt the models to your documents"


def test_readme_adapt_snippet_runs(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = python_block(SECTION)
    # the tiny random model needs a lower threshold and a faster learning rate than the real one
    real = "train=TrainConfig(epochs=2, learning_rate=1e-4),"
    assert real in code and 'llm_from_spec("ollama:qwen3:4b")' in code
    code = code.replace(
        real,
        "train=TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2, lora_r=4, lora_alpha=8, "
        "max_length=64), threshold=0.3, chunk_size=200, chunk_overlap=10,",
    )
    link_models(tmp_path, tiny_embedding_dir)
    write_corpus(tmp_path / "docs", 30)
    monkeypatch.setattr(langchain_qwen3, "llm_from_spec", lambda spec: FakeLLM())
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == f"qwen3-rag adapt: {(tmp_path / 'adapted').resolve()}"
    assert out[-2].startswith("The adapted model is")
    assert out[-1].split()[0] in ("True", "False")
    assert out[-1].endswith(str(Path("adapted") / "model"))
    assert (tmp_path / "adapted" / "model" / "model.safetensors").is_file()
    clear_cache()


def test_readme_adapt_flags_exist() -> None:
    text = readme_section(SECTION)
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    options = set(sub.choices["adapt"]._option_string_actions)  # type: ignore[attr-defined]
    mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text))
    assert mentioned and mentioned <= options, mentioned - options
