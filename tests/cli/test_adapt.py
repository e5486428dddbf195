"""``qwen3-rag adapt`` in-process: the table, --json, resume refusal, and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import langchain_qwen3.llm
from qwen3_rag import clear_cache, cli
from tests.adapt.conftest import single_thread
from tests.adapt.fakes import FakeLLM, write_corpus

FAST = [
    "--threshold", "0.3", "--chunk-size", "200", "--chunk-overlap", "10",
    "--epochs", "1", "--batch-size", "8", "--lr", "1e-2", "--lora-r", "4", "--lora-alpha", "8",
    "--max-length", "64", "-q",
]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models train fastest on one thread (the command keeps a lower count it finds)."""
    with single_thread():
        yield


@pytest.fixture
def fake_spec(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``--llm fake:model`` resolves, through the ``qwen3_rag.llm_spec`` entry point
    (``langchain_qwen3.llm.llm_from_spec``), to the fake LLM."""
    asked: list[str] = []

    def from_spec(spec: str) -> FakeLLM:
        asked.append(spec)
        return FakeLLM()

    monkeypatch.setattr(langchain_qwen3.llm, "llm_from_spec", from_spec)
    return asked


def test_adapt_prints_the_summary_table_then_refuses_a_finished_run(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    fake_spec: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    corpus = write_corpus(tmp_path / "docs", 20)
    out = tmp_path / "adapted"
    argv = [
        "adapt",
        str(corpus),
        "--llm",
        "fake:model",
        "--out",
        str(out),
        "--embed-model",
        str(tiny_embedding_dir),
        *FAST,
    ]
    assert cli.main(argv) == 0
    assert fake_spec == ["fake:model"]
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0] == f"qwen3-rag adapt: {out.resolve()}"
    for stage in ("synthesize", "filter", "mine", "train", "merge", "evaluate"):
        assert any(line.startswith(stage) for line in lines), stage
    assert "20 passages, 20 with a query" in table and "nDCG@10: " in table
    assert lines[-1].startswith("The adapted model is")
    assert (out / "model" / "model.safetensors").is_file()

    assert cli.main([*argv, "--json"]) == 1  # finished: refused, in one line
    captured = capsys.readouterr()
    assert captured.out == ""
    error = captured.err.strip().splitlines()
    assert len(error) == 1 and "finished adapt run" in error[0] and "--overwrite" in error[0]

    assert cli.main([*argv, "--json", "--stage", "evaluate"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == str((out / "model").resolve())
    assert set(summary["stages"]) >= {"evaluate", "merge"} and "verdict" in summary
    clear_cache()


def test_errors_are_one_line_naming_the_flag(
    tmp_path: Path, tiny_embedding_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "docs", 3)
    base = ["adapt", str(corpus), "--embed-model", str(tiny_embedding_dir), *FAST]
    assert cli.main([*base, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--llm" in err[0]
    assert cli.main([*base, "--out", str(tmp_path / "b"), "--llm", "no-provider-knows-this"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --llm no-provider-knows-this:")
    with pytest.raises(SystemExit):
        cli.main([*base, "--out", str(tmp_path / "c"), "--stage", "tune"])
    assert "invalid choice" in capsys.readouterr().err
