"""A server's answer is checked by real code: a wrong one raises RemoteError, also under -O."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from qwen3_rag import Embedder, RemoteError, Reranker
from tests.models import REPO_ROOT

NAN = math.nan


@contextmanager
def canned(answer: Any) -> Iterator[str]:
    """A loopback server answering every POST with ``answer`` as JSON (NaN written as NaN)."""
    body = json.dumps(answer).encode()  # json writes NaN/Infinity literals, as a server may

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def item(index: int, vector: list[float]) -> dict[str, Any]:
    return {"index": index, "embedding": vector}


EMBEDDING_ANSWERS = {
    "one too few": ({"data": [item(0, [1.0, 0.0])]}, r"1 items, wanted"),
    "not a list": ({"data": {"0": [1.0]}}, r"no data list"),
    "index twice": (
        {"data": [item(0, [1.0, 0.0]), item(0, [0.0, 1.0])]},
        r"index 0 answered twice",
    ),
    "index out of range": ({"data": [item(0, [1.0, 0.0]), item(2, [0.0, 1.0])]}, r"index 2 is not"),
    "index not an int": ({"data": [item(0, [1.0, 0.0]), item(True, [0.0, 1.0])]}, r"index True"),
    "no embedding": ({"data": [item(0, [1.0, 0.0]), {"index": 1}]}, r"item 1 has no embedding"),
    "ragged": ({"data": [item(0, [1.0, 0.0]), item(1, [1.0])]}, r"not lists of numbers of one"),
    "NaN": ({"data": [item(0, [NAN, 0.0]), item(1, [0.0, 1.0])]}, r"1 NaN or infinite value"),
    "infinite": ({"data": [item(0, [math.inf, 0.0]), item(1, [0.0, 1.0])]}, r"NaN or infinite"),
    "all zero": ({"data": [item(0, [0.0, 0.0]), item(1, [0.0, 1.0])]}, r"all-zero vector"),
}


@pytest.mark.parametrize("name", list(EMBEDDING_ANSWERS))
def test_a_wrong_embedding_answer_raises(name: str) -> None:
    answer, match = EMBEDDING_ANSWERS[name]
    with canned(answer) as url:
        emb = Embedder("served-embedding", base_url=url, max_retries=0)
        with pytest.raises(RemoteError, match=match) as info:
            emb.embed_documents(["a", "b"])
        assert url in str(info.value)


async def test_the_async_path_checks_the_same() -> None:
    answer, match = EMBEDDING_ANSWERS["NaN"]
    with canned(answer) as url:
        emb = Embedder("served-embedding", base_url=url, max_retries=0)
        with pytest.raises(RemoteError, match=match):
            await emb.aembed_documents(["a", "b"])


def result(index: Any, score: Any) -> dict[str, Any]:
    return {"index": index, "relevance_score": score}


RERANK_ANSWERS = {
    "one too few": ({"results": [result(0, 0.9)]}, r"1 results, wanted"),
    "index twice": ({"results": [result(1, 0.9), result(1, 0.2)]}, r"index 1 answered twice"),
    "index out of range": ({"results": [result(0, 0.9), result(-1, 0.2)]}, r"index -1 is not"),
    "no score": ({"results": [result(0, 0.9), {"index": 1}]}, r"result 1 has no score"),
    "a string score": ({"results": [result(0, 0.9), result(1, "0.2")]}, r"result 1 has no score"),
    "NaN": ({"results": [result(0, NAN), result(1, 0.2)]}, r"1 NaN or infinite value"),
    "no index": ({"results": [result(0, 0.9), {"relevance_score": 0.2}]}, r"result 1 has no index"),
}


@pytest.mark.parametrize("name", list(RERANK_ANSWERS))
def test_a_wrong_rerank_answer_raises(name: str) -> None:
    answer, match = RERANK_ANSWERS[name]
    with canned(answer) as url:
        rr = Reranker("served-reranker", base_url=url, max_retries=0)
        with pytest.raises(RemoteError, match=match):
            rr.score("q", ["a", "b"])


def test_a_right_answer_passes() -> None:
    with canned({"data": [item(1, [0.0, 3.0]), item(0, [4.0, 0.0])]}) as url:
        got = Embedder("served-embedding", base_url=url).embed_documents(["a", "b"])
    assert got.tolist() == [[1.0, 0.0], [0.0, 1.0]]  # put back in order, normalised


CHILD = textwrap.dedent(
    """
    import json, sys
    from qwen3_rag import Embedder, RemoteError, Reranker
    print("debug", __debug__)
    for url, kind in json.loads(sys.argv[1]):
        try:
            if kind == "embedding":
                Embedder("served", base_url=url, max_retries=0).embed_documents(["a", "b"])
            else:
                Reranker("served", base_url=url, max_retries=0).score("q", ["a", "b"])
        except RemoteError as exc:
            print("RemoteError:", exc)
        else:
            print("accepted")
    """
)

UNDER_O = [
    ("embedding", EMBEDDING_ANSWERS["NaN"][0], "NaN or infinite"),
    ("embedding", EMBEDDING_ANSWERS["index twice"][0], "index 0 answered twice"),
    ("embedding", EMBEDDING_ANSWERS["one too few"][0], "1 items, wanted"),
    ("rerank", RERANK_ANSWERS["NaN"][0], "NaN or infinite"),
    ("rerank", RERANK_ANSWERS["index out of range"][0], "index -1 is not"),
]


def test_answers_are_checked_under_python_dash_o() -> None:
    """Under -O every ``assert`` is gone: the checks must be real code (one child, 5 servers)."""
    with ExitStack() as stack:
        urls = [stack.enter_context(canned(answer)) for _, answer, _ in UNDER_O]
        done = subprocess.run(
            [
                sys.executable,
                "-O",
                "-c",
                CHILD,
                json.dumps([[u, k] for u, (k, _, _) in zip(urls, UNDER_O, strict=True)]),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
            env={"PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr[-2000:]
    assert lines[0] == "debug False"  # asserts really are off in the child
    assert len(lines) == 1 + len(UNDER_O), done.stdout
    for line, (_, _, said) in zip(lines[1:], UNDER_O, strict=True):
        assert line.startswith("RemoteError:") and said in line, line
