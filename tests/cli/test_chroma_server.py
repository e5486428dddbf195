"""``--chroma-url`` (or QWEN3_RAG_CHROMA_URL): the commands on a Chroma server; Ray errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qwen3_rag import cli
from tests.beir import write_beir
from tests.chroma_server import free_port
from tests.cli.conftest import CHUNKING, read_db


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
) -> Path:
    monkeypatch.setenv("QWEN3_RAG_EMBED_MODEL", str(tiny_embedding_dir))
    monkeypatch.setenv("QWEN3_RAG_RERANK_MODEL", str(tiny_reranker_dir))
    monkeypatch.delenv("QWEN3_RAG_CHROMA_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def last_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_index_and_query_through_a_chroma_server(
    env: Path,
    corpus: Path,
    chroma_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["--collection", "cli", "--instruction", "question_answering", *CHUNKING]
    assert cli.main(["index", str(corpus), "--chroma-url", chroma_url, *args]) == 0
    out = capsys.readouterr().out
    assert f"{chroma_url} now holds" in out and "in 'cli'" in out
    assert not (env / "qwen3_db").exists()  # nothing written to the default --db

    # The same index in an embedded store, for comparison.
    assert cli.main(["index", str(corpus), "--db", "db", *args]) == 0
    capsys.readouterr()
    embedded = read_db(env / "db", "cli")

    from qwen3_rag.store import connect

    got = connect(chroma_url).get_collection("cli").get(include=["documents", "metadatas"])
    served = dict(
        zip(got["ids"], zip(got["documents"], got["metadatas"], strict=True), strict=True)
    )
    assert served.keys() == embedded.keys()
    assert all(served[i] == (r["document"], r["metadata"]) for i, r in embedded.items())

    # The variable instead of the flag; the collection's instruction comes back from the server.
    monkeypatch.setenv("QWEN3_RAG_CHROMA_URL", chroma_url)
    question = ["query", "What is the capital of China?", "--collection", "cli", "--json"]
    assert cli.main([*question, "-k", "3"]) == 0
    served_hits = json.loads(capsys.readouterr().out)["results"]
    assert cli.main([*question, "-k", "3", "--chroma-url", "local", "--db", "db"]) == 0
    local_hits = json.loads(capsys.readouterr().out)["results"]
    assert [h["id"] for h in served_hits] == [h["id"] for h in local_hits]
    assert len(served_hits) == 3
    assert [h["rerank_score"] for h in served_hits] == pytest.approx(
        [h["rerank_score"] for h in local_hits], abs=1e-5
    )

    # Incremental through the server.
    assert cli.main(["index", str(corpus), *args]) == 0
    assert capsys.readouterr().out.startswith("0 chunks embedded")

    # A missing collection names the server and the flag.
    msg = last_error(capsys, "query", "hi", "--collection", "nope")
    assert f"no collection 'nope' in {chroma_url}" in msg and "--chroma-url" in msg


def test_a_chroma_server_that_is_down_is_one_line(
    env: Path, corpus: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    beir = str(write_beir(env / "beir"))
    for argv in (["index", str(corpus)], ["query", "hi"], ["eval", beir]):
        msg = last_error(capsys, *argv, "--chroma-url", down)
        assert msg.startswith(f"error: no Chroma server answers at {down}"), msg
        assert "--chroma-url" in msg and "QWEN3_RAG_CHROMA_URL" in msg
    monkeypatch.setenv("QWEN3_RAG_CHROMA_URL", "ftp://nowhere")
    assert "is not a Chroma server URL" in last_error(capsys, "query", "hi")


def test_ray_errors_name_the_extra_and_the_flag(
    env: Path, corpus: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = last_error(capsys, "index", str(corpus), "--ray-actors", "2")
    assert msg == "error: --ray-actors applies only with --ray"
    for name in ("ray", "ray.data"):  # as if Ray were not installed
        monkeypatch.setitem(sys.modules, name, None)
    msg = last_error(capsys, "index", str(corpus), "--ray")
    assert 'pip install "qwen3-rag[ray]"' in msg and "--ray" in msg
    assert not (env / "qwen3_db").exists()  # nothing created
