"""``qwen3-rag eval``: the table and --json agree, run files, Chroma collections, every error."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from qwen3_rag import cli
from tests.beir import CORPUS, QRELS, QUERIES, write_beir
from tests.cli.conftest import CHUNKING, write_corpus

pytest.importorskip("pytrec_eval")


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
) -> Path:
    monkeypatch.setenv("QWEN3_RAG_EMBED_MODEL", str(tiny_embedding_dir))
    monkeypatch.setenv("QWEN3_RAG_RERANK_MODEL", str(tiny_reranker_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default vector cache
    monkeypatch.chdir(tmp_path)
    write_beir(tmp_path / "data")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    assert cli.main(list(argv)) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    return captured.out, captured.err


def one_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len([x for x in lines if x.startswith("error: ")]) == 1
    return lines[-1]


def parse_table(text: str) -> tuple[list[str], dict[str, dict[str, str]], dict[str, str]]:
    """Metric names, row name -> metric -> cell (value and marks), row name -> p cell."""
    lines = text.strip().splitlines()
    header = re.split(r"\s{2,}", lines[1].strip())
    assert header[0] == "configuration" and header[-1].startswith("p(")
    metrics = header[1:-1]
    rows: dict[str, dict[str, str]] = {}
    p_cells: dict[str, str] = {}
    for line in lines[2:-1]:
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(metrics) + 2, line
        rows[cells[0]] = dict(zip(metrics, cells[1:-1], strict=True))
        p_cells[cells[0]] = cells[-1]
    assert lines[-1].startswith("* best in column; +/- better/worse than the first row")
    return metrics, rows, p_cells


def test_table_and_json_agree(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "eval",
        "data",
        "--instruction",
        "web_search,none",
        "--instruction",
        "Given a question, find the passage that answers it",
        "--dimensions",
        "64,32",
        "--rerank",
        "-k",
        "8",
        "--fetch-k",
        "8",
        "--metrics",
        "nDCG@5,Recall@8,MRR@8,MAP@8",
        "--runs",
        "runs",
    ]
    table, err = run(capsys, *args)
    assert "1 of 9 queries have no relevant document in split 'test': skipped" in err
    answer, _ = run(capsys, *args, "--json")  # from the vector cache: same numbers
    report = json.loads(answer)

    metrics, rows, p_cells = parse_table(table)
    assert metrics == report["metrics"] == ["nDCG@5", "Recall@8", "MRR@8", "MAP@8"]
    names = [c["name"] for c in report["configurations"]]
    assert list(rows) == names
    assert len(names) == 12  # 3 instructions x 2 sizes, each also reranked
    assert names[:3] == ["web_search d=64", "web_search d=32", "no-instruction d=64"]
    assert names[-1] == '"Given a question, find…" d=32 +rerank@8'
    assert table.splitlines()[0] == (
        "data, split test: 8 queries, 16 documents, exact search, 8 results per query"
    )
    for config in report["configurations"]:
        for m in metrics:
            cell = rows[config["name"]][m]
            value, marks = re.fullmatch(r"(\d\.\d{4})([*+-]*)", cell).groups()  # type: ignore[union-attr]
            assert value == f"{config['metrics'][m]:.4f}"
            assert ("*" in marks) == (m in config["best"])
            assert ("+" in marks) == (m in config["better"])
            assert ("-" in marks) == (m in config["worse"])
            best = max(c["metrics"][m] for c in report["configurations"])
            assert (m in config["best"]) == (config["metrics"][m] == best)
        if config["name"] == names[0]:
            assert p_cells[config["name"]] == "-" and config["p_values"] == {}
        else:
            p = config["p_values"][metrics[0]]
            assert p_cells[config["name"]] == ("<0.001" if p < 0.001 else f"{p:.3f}")
    assert report["significance"] == {
        "test": "permutation",
        "alpha": 0.05,
        "baseline": "web_search d=64",
    }
    files = sorted(p.name for p in (env / "runs").iterdir())
    assert len(files) == 12 and "web_search_d=64_+rerank@8.trec" in files
    first = (env / "runs" / "web_search_d=64.trec").read_text().splitlines()
    assert len(first) == 8 * 8
    qid, q0, did, rank, _, tag = first[0].split()
    assert (q0, rank, tag) == ("Q0", "1", "web_search_d=64") and qid in QRELS and did in CORPUS


def test_default_run_and_t_test(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, _ = run(capsys, "eval", "data", "--no-cache", "--test", "t-test", "-q")
    assert "paired t-test" in table
    metrics, rows, _ = parse_table(table)
    assert metrics == ["nDCG@10", "Recall@10", "Recall@100", "MRR@10", "MAP@100"]
    assert list(rows) == ["web_search"]
    assert all(cell.endswith("*") for cell in rows["web_search"].values())  # alone: the best
    assert not (env / "xdg").exists()  # --no-cache wrote nothing


def test_eval_of_an_indexed_collection(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = write_corpus(env / "docs")
    assert cli.main(["index", "docs", "--db", "db", *CHUNKING]) == 0
    # A BEIR folder whose corpus ids are the files, as `qwen3-rag query` prints them.
    corpus = {
        f"docs/{name}": (docs / name).read_text() for name in ("capitals.md", "notes/physics.txt")
    }
    corpus["docs/notes/code.py"] = (docs / "notes" / "code.py").read_text()
    queries = {"q1": "What is the capital of France?", "q2": "What moves the planets?"}
    qrels = {"q1": {"docs/capitals.md": 1}, "q2": {"docs/notes/physics.txt": 1}}
    write_beir(env / "files", corpus, queries, qrels)

    msg = one_error(capsys, "eval", "files", "--db", "db")
    assert "no record of collection 'docs' maps to a corpus id" in msg
    assert "--id-key source" in msg
    answer, _ = run(
        capsys, "eval", "files", "--db", "db", "--id-key", "source", "--rerank", "--json",
        "-k", "3", "--metrics", "Recall@3,MRR@3", "--runs", "runs",
    )  # fmt: skip
    report = json.loads(answer)
    assert report["search"] == "Chroma collection 'docs' (HNSW, cosine)"
    assert [c["name"] for c in report["configurations"]] == ["web_search", "web_search +rerank@3"]
    for name in ("web_search.trec", "web_search_+rerank@3.trec"):
        lines = (env / "runs" / name).read_text().splitlines()
        by_query: dict[str, list[str]] = {}
        for line in lines:
            qid, _, did, *_ = line.split()
            by_query.setdefault(qid, []).append(did)
        assert set(by_query) == {"q1", "q2"}
        for found in by_query.values():
            assert len(found) == len(set(found)) == 3  # three files, each once
            assert set(found) == set(corpus)
    # Recall@3 with three files and k=3: everything is found.
    assert all(c["metrics"]["Recall@3"] == 1.0 for c in report["configurations"])
    msg = one_error(capsys, "eval", "files", "--db", "db", "--dimensions", "32")
    assert "--dimensions cannot be used with --db" in msg


def test_eval_errors_are_one_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "error: nodata: no such folder" in one_error(capsys, "eval", "nodata")
    for name in ("corpus.jsonl", "queries.jsonl"):
        folder = write_beir(env / f"no-{name}")
        (folder / name).unlink()
        assert f"{name}: no such file" in one_error(capsys, "eval", str(folder))
    folder = write_beir(env / "dev-only", split="dev")
    msg = one_error(capsys, "eval", str(folder))
    assert "test.tsv: no such file (split 'test'; this folder has: dev)" in msg
    assert cli.main(["eval", str(folder), "--split", "dev", "-q", "--no-cache"]) == 0
    capsys.readouterr()

    folder = write_beir(env / "broken")
    with (folder / "corpus.jsonl").open("a") as f:
        f.write("{oops\n")
    msg = one_error(capsys, "eval", str(folder))
    assert re.search(r"corpus\.jsonl, line 17: not valid JSON", msg)
    folder = write_beir(env / "empty")
    (folder / "corpus.jsonl").write_text("\n")
    assert "the corpus is empty" in one_error(capsys, "eval", str(folder))

    msg = one_error(capsys, "eval", "data", "--rerank", "--fetch-k", "5", "-k", "10")
    assert "--fetch-k (5) must be at least -k (10)" in msg
    msg = one_error(capsys, "eval", "data", "--rerank", "--fetch-k", "50")  # -k: 100
    assert "--fetch-k (50) must be at least -k (100)" in msg
    assert "--metrics: metric 'bleu@4'" in one_error(capsys, "eval", "data", "--metrics", "bleu@4")
    msg = one_error(capsys, "eval", "data", "--dimensions", "64,big")
    assert "--dimensions '64,big': expected integers" in msg
    msg = one_error(capsys, "eval", "data", "--dimensions", "16", "--no-cache")
    assert "dimensions=16 is out of range" in msg
    msg = one_error(capsys, "eval", "data", "--instruction", "websearch", "--no-cache")
    assert "'websearch' is not a known preset" in msg
    assert "--id-key applies only with --db" in one_error(capsys, "eval", "data", "--id-key", "x")
    assert "--db nodb: no Chroma store" in one_error(capsys, "eval", "data", "--db", "nodb")
    missing = str(env / "no_such_model")
    msg = one_error(capsys, "eval", "data", "--embed-model", missing, "--no-cache")
    assert f"model={missing!r}: no such folder" in msg


def test_unknown_qrels_are_a_warning(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qrels: dict[str, Any] = {**QRELS, "ghost": {"geo-0": 1}, "q-git": {"code-2": 1, "zz": 1}}
    write_beir(env / "odd", CORPUS, QUERIES, qrels)
    table, err = run(capsys, "eval", "odd", "--no-cache", "--metrics", "nDCG@10")
    assert "2 qrels rows ignored: they name 1 unknown documents and 1 unknown queries" in err
    assert "8 queries" in table


def test_rerank_compares_how_long_documents_are_read(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--long-documents truncate,max: each reranked row once per way, windows named."""
    args = ["eval", "data", "--rerank", "-k", "8", "--metrics", "nDCG@5", "--json", "-q"]
    answer, _ = run(capsys, *args, "--long-documents", "truncate,max", "--max-windows", "4")
    report = json.loads(answer)
    names = [c["name"] for c in report["configurations"]]
    assert names == ["web_search", "web_search +rerank@8", "web_search +rerank@8 windows"]
    ways = [c["long_documents"] for c in report["configurations"]]
    assert ways == [None, "truncate", "max"]
    said = one_error(capsys, "eval", "data", "--rerank", "--long-documents", "all")
    assert "--long-documents all" in said
