"""``qwen3-rag doctor`` and ``--precision``: what this CPU runs, said, kept and compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen3_rag import cli
from qwen3_rag.cpu import cpu_features
from qwen3_rag.store import collection_config, open_client
from tests.adapt.fakes import write_corpus
from tests.beir import write_beir
from tests.cli.test_eval import parse_table

CHUNKS = ["--chunk-size", "64", "--chunk-overlap", "8", "-q"]


def test_doctor_says_the_cpu_and_what_fast_picks(
    engine_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"CPU: {cpu_features().summary()}" in out
    assert "precision='fast' here: " in out and "engine cache: " + str(engine_cache) in out
    assert "no fidelity record yet" in out


def test_doctor_measures_each_path_and_lists_the_records(
    engine_cache: Path, tiny_embedding_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    argv = ["doctor", "--measure", "bfloat16,onnx-int8", "--embed-model", str(tiny_embedding_dir)]
    assert cli.main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    paths = sorted(r["identity"].split(" ", 1)[1] for r in data["records"])
    assert paths == ["(onnx, int8)", "(torch, bfloat16)"]
    assert all(r["ok"] and r["metric"] == "min_cosine" for r in data["records"])
    assert data["cpu"] == cpu_features().summary() and data["fast"]["reason"]
    assert cli.main(["doctor"]) == 0  # the table shows them too, later, without --measure
    table = capsys.readouterr().out
    assert "| min_cosine |" in table and table.count("| ok |") == 2


def test_doctor_errors_are_one_line_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--measure"]) == 1
    assert "--embed-model" in capsys.readouterr().err
    assert cli.main(["doctor", "--measure", "turbo", "--embed-model", "m"]) == 1
    assert "--measure: unknown path 'turbo'" in capsys.readouterr().err


def test_index_with_a_path_and_query_reopens_with_it(
    engine_cache: Path,
    tmp_path: Path,
    tiny_embedding_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = write_corpus(tmp_path / "docs", 2)
    db = str(tmp_path / "db")
    model = ["--embed-model", str(tiny_embedding_dir)]
    assert (
        cli.main(["index", str(docs), "--db", db, *model, "--precision", "bfloat16", *CHUNKS]) == 0
    )
    config = collection_config(open_client(Path(db)).get_collection("docs"))
    assert config["identity"]["precision"] == "bfloat16"
    capsys.readouterr()
    # no --precision: the collection's own path, so no identity mismatch
    assert cli.main(["query", "a question", "--db", db, "--no-rerank", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)
    # a question in float32 is allowed (never stored); documents in float32 are refused
    assert cli.main(["query", "q", "--db", db, "--no-rerank", "--precision", "exact", "-q"]) == 0
    exact = [*model, "--precision", "exact", "--rebuild", *CHUNKS]
    assert cli.main(["index", str(docs), "--db", db, *exact]) == 0  # rebuilt in float32
    capsys.readouterr()
    (docs / "new.md").write_text("A new document about gravity.\n")
    again = ["index", str(docs), "--db", db, *model, "--precision", "bfloat16", *CHUNKS]
    assert cli.main(again) == 1
    said = capsys.readouterr().err
    assert "precision float32 -> bfloat16" in said and "--precision" in said
    assert cli.main(["index", str(docs), "--db", db, "--precision", "bf16", *CHUNKS]) == 1
    assert "--precision 'bf16'" in capsys.readouterr().err


def test_eval_compares_paths(
    engine_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tiny_embedding_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("pytrec_eval")
    monkeypatch.setenv("QWEN3_RAG_EMBED_MODEL", str(tiny_embedding_dir))
    write_beir(tmp_path / "data")
    argv = ["eval", str(tmp_path / "data"), "--no-cache", "-q", "--precision", "exact,bfloat16"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    _, rows, p_cells = parse_table(capsys.readouterr().out)
    first, second = rows  # one row per path, the exact one the baseline
    assert first == "web_search"
    assert second == f"{tiny_embedding_dir.name} web_search [torch bfloat16]"
    assert p_cells[first] == "-"  # the baseline of the significance tests
