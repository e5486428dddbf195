"""The ``qwen3-rag`` command end to end, in subprocesses, on the tiny models and a temp db."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qwen3_rag import Embedder, Reranker, cli
from qwen3_rag.loading import ModelSource, load_fast_tokenizer
from tests.cli.conftest import CHUNKING, RunCli, read_db

TEXT_FILES = ["capitals.md", "notes/code.py", "notes/physics.txt"]


def embedded(stdout: str) -> int:
    match = re.search(r"(\d+) chunks embedded", stdout)
    assert match, stdout
    return int(match.group(1))


def written(stdout: str) -> int:
    """Chunks written: embedded by the model, or with the stored vector of the same text."""
    match = re.search(r"(\d+) chunks embedded, (\d+) reused", stdout)
    assert match, stdout
    return int(match.group(1)) + int(match.group(2))


def by_source(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for id_, rec in records.items():
        out.setdefault(rec["metadata"]["source"], {})[id_] = rec
    return out


def check_consistent(records: dict[str, dict[str, Any]], tokenizer: Any) -> None:
    """Every file's chunks: ids 0..n-1, one hash, texts found where recorded, within budget."""
    for source, recs in by_source(records).items():
        text = Path(source).read_text(encoding="utf-8")
        (n,) = {r["metadata"]["n_chunks"] for r in recs.values()}
        assert set(recs) == {f"{source}#{i}" for i in range(n)}
        assert len({r["metadata"]["file_hash"] for r in recs.values()}) == 1
        for rec in recs.values():
            doc, meta = rec["document"], rec["metadata"]
            start = meta["start_char"]
            assert text[start : start + len(doc)] == doc
            assert meta["start_line"] == text.count("\n", 0, start) + 1
            assert len(tokenizer.encode(doc, add_special_tokens=False).ids) <= 40


def assert_same(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    assert sorted(got) == sorted(want)  # exact count, no duplicate or missing ids
    for id_, rec in want.items():
        assert got[id_]["document"] == rec["document"]
        assert got[id_]["metadata"] == rec["metadata"]
        np.testing.assert_allclose(got[id_]["embedding"], rec["embedding"], atol=1e-5)


def index_in_process(
    monkeypatch: pytest.MonkeyPatch, cwd: Path, env: dict[str, str], db: Path
) -> None:
    """The reference: the same index run uninterrupted, in this process."""
    monkeypatch.chdir(cwd)
    for key in ("QWEN3_RAG_EMBED_MODEL", "QWEN3_RAG_RERANK_MODEL"):
        monkeypatch.setenv(key, env[key])
    assert cli.main(["index", "docs", "--db", str(db), "-q", *CHUNKING]) == 0


def test_index_killed_query_reindex_edit_delete(
    run_cli: RunCli,
    corpus: Path,
    tmp_path: Path,
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
) -> None:
    tokenizer = load_fast_tokenizer(ModelSource(str(tiny_embedding_dir)))
    db, ref = tmp_path / "db", tmp_path / "reference"
    index_in_process(monkeypatch, tmp_path, cli_env, ref)
    first = read_db(ref)
    assert set(by_source(first)) == {str(corpus / f) for f in TEXT_FILES}
    check_consistent(first, tokenizer)
    assert len(by_source(first)[str(corpus / "notes" / "physics.txt")]) >= 6

    # 1. index, killed (SIGKILL) after two batches of four chunks: those eight are kept.
    proc = run_cli("index", "docs", "--db", "db", *CHUNKING, faults=["--kill-after-upserts", "2"])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(read_db(db)) == 8
    # The re-run embeds only the rest and ends equal to the uninterrupted index; the binary
    # file and the hidden folder are skipped.
    proc = run_cli("index", "docs", "--db", "db", *CHUNKING)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"skipped binary file {corpus / 'image.bin'}" in proc.stderr
    assert written(proc.stdout) == len(first) - 8
    assert_same(read_db(db), first)
    emb = Embedder(str(tiny_embedding_dir))
    ids = sorted(first)
    np.testing.assert_allclose(  # stored vectors are the embedder's document vectors
        np.array([first[i]["embedding"] for i in ids]),
        emb.embed_documents([first[i]["document"] for i in ids]),
        atol=1e-5,
    )
    first = read_db(db)

    # 2. query --json: cosine with the instructed query, then the reranker's order.
    question = "What is the capital of China?"
    proc = run_cli("query", question, "--db", "db", "-k", "3", "--fetch-k", "6", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["query"] == question
    results = out["results"]
    assert [r["rank"] for r in results] == [1, 2, 3]
    q = emb.embed_queries([question])[0]
    sims = {i: float(np.dot(q, first[i]["embedding"])) for i in ids}
    top6 = sorted(ids, key=lambda i: -sims[i])[:6]
    scores = Reranker(str(tiny_reranker_dir)).score(question, [first[i]["document"] for i in top6])
    expected = sorted(zip(top6, scores, strict=True), key=lambda p: -p[1])[:3]
    assert [r["id"] for r in results] == [i for i, _ in expected]
    for r, (i, s) in zip(results, expected, strict=True):
        meta = first[i]["metadata"]
        assert abs(r["rerank_score"] - s) < 1e-4
        assert abs(r["vector_score"] - sims[i]) < 1e-4
        assert r["text"] == first[i]["document"]
        assert r["source"] == str(Path("docs") / Path(meta["source"]).relative_to(corpus))
        assert (r["chunk"], r["start_line"]) == (meta["chunk"], meta["start_line"])

    # 3. query, text: a header line with both scores and source:line, then a snippet line.
    proc = run_cli("query", question, "--db", "db", "-k", "2", "--fetch-k", "6")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4
    top = results[0]
    head = f"1. rerank {top['rerank_score']:.4f}  vector {top['vector_score']:.4f}  "
    assert lines[0].startswith(head + f"{top['source']}:{top['start_line']}")
    assert lines[1].strip() == " ".join(top["text"].split())[:240].strip()
    assert lines[2].startswith("2. rerank ")

    # 4. re-run: nothing embedded, nothing changed.
    proc = run_cli("index", "docs", "--db", "db", *CHUNKING)
    assert proc.returncode == 0, proc.stderr
    assert embedded(proc.stdout) == 0
    assert "3 unchanged" in proc.stdout
    assert read_db(db) == first

    # 5. edit one file (fewer chunks now), killed after one batch: its old and new chunks
    #    mixed, never duplicated; the re-run finishes it and removes its leftovers; the other
    #    files' chunks never change.
    edited = corpus / "notes" / "physics.txt"
    paragraphs = edited.read_text(encoding="utf-8").split("\n\n")
    edited.write_text("\n\n".join(["Gravity bends light.", *paragraphs[3:]]), encoding="utf-8")
    proc = run_cli("index", "docs", "--db", "db", *CHUNKING, faults=["--kill-after-upserts", "1"])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert sorted(read_db(db)) == sorted(first)
    proc = run_cli("index", "docs", "--db", "db", *CHUNKING)
    assert proc.returncode == 0, proc.stderr
    second = read_db(db)
    check_consistent(second, tokenizer)
    before, after = by_source(first), by_source(second)
    assert written(proc.stdout) == len(after[str(edited)]) - 4
    assert embedded(proc.stdout) < written(proc.stdout)  # unchanged paragraphs: vectors reused
    for f in ("capitals.md", "notes/code.py"):
        assert after[str(corpus / f)] == before[str(corpus / f)]
    assert 4 < len(after[str(edited)]) < len(before[str(edited)])
    assert "Gravity bends light." in after[str(edited)][f"{edited}#0"]["document"]
    index_in_process(monkeypatch, tmp_path, cli_env, ref)
    assert_same(second, read_db(ref))

    # 6. delete a file: its chunks go, the rest stay.
    (corpus / "capitals.md").unlink()
    proc = run_cli("index", "docs", "--db", "db", *CHUNKING)
    assert proc.returncode == 0, proc.stderr
    assert embedded(proc.stdout) == 0
    assert "1 deleted" in proc.stdout
    third = read_db(db)
    assert by_source(third) == {k: v for k, v in after.items() if k != str(corpus / "capitals.md")}


def test_instruction_none_indexes_for_raw_queries(
    corpus: Path, tmp_path: Path, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from qwen3_rag import store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QWEN3_RAG_EMBED_MODEL", cli_env["QWEN3_RAG_EMBED_MODEL"])
    db = tmp_path / "raw"
    args = ["index", "docs/capitals.md", "--db", str(db), "-q", "--instruction", "none"]
    assert cli.main(args) == 0
    assert store.stored_config(store.open_client(db), "docs")["instruction"] == ""
    # a later run without --instruction keeps raw queries: nothing is refused or re-embedded
    assert cli.main(["index", "docs/capitals.md", "--db", str(db), "-q"]) == 0
