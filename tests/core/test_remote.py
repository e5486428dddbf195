"""Remote backends against a literal loopback server: the strings sent, the numbers back, errors.

The server (tests/remote_server.py) tokenizes and runs the models the way vLLM does, with no
qwen3_rag code; the client must format every input so that the server computes exactly what
the local path computes. Expected strings are written out here, literally.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import Embedder, Reranker
from qwen3_rag.remote import RemoteError
from tests.remote_server import LoopbackServer

TASK = "Given a web search query, retrieve relevant passages that answer the query"
SIMILAR = "Retrieve semantically similar text"
PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

QUERIES = ["What is the capital of China?", "Explain gravity", "", "北京是哪个国家的首都？"]  # noqa: RUF001
DOCUMENTS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "",
    "def reverse(xs):\n    return xs[::-1]\n",
    "Émile Zola était un écrivain français. " * 3,
]
LONG = "Die Hauptstadt von Deutschland ist Berlin, eine Stadt mit vielen Museen. " * 30


@pytest.fixture(scope="module")
def server(real_embedding_dir: Path, real_reranker_dir: Path) -> Iterator[LoopbackServer]:
    with LoopbackServer(real_embedding_dir, real_reranker_dir).running() as s:
        yield s


@pytest.fixture
def srv(server: LoopbackServer) -> LoopbackServer:
    server.reset()
    server.accept_dimensions = True
    server.api_key = None
    server.delay = 0.0
    server.max_model_len = 100_000
    return server


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qwen3_rag._http.BACKOFF_SECONDS", 0.01)
    monkeypatch.delenv("QWEN3_RAG_EMBED_API_KEY", raising=False)
    monkeypatch.delenv("QWEN3_RAG_RERANK_API_KEY", raising=False)


def _emb(folder: Path, srv: LoopbackServer, **kw: object) -> tuple[Embedder, Embedder]:
    local = Embedder(str(folder), device="cpu", **kw)  # type: ignore[arg-type]
    remote = Embedder(str(folder), base_url=srv.url, **kw)  # type: ignore[arg-type]
    return local, remote


# -- embeddings ------------------------------------------------------------------------------


def test_embeddings_equal_local_and_strings_follow_the_recipe(
    real_embedding_dir: Path, srv: LoopbackServer
) -> None:
    local, remote = _emb(real_embedding_dir, srv)
    q = remote.embed_queries(QUERIES)
    d = remote.embed_documents(DOCUMENTS)
    (q_body,), (d_body,) = srv.bodies("/v1/embeddings")[:1], srv.bodies("/v1/embeddings")[1:]
    # One request each, inputs sorted by length (the client batches like the local path).
    assert sorted(q_body["input"]) == sorted(f"Instruct: {TASK}\nQuery:{t}" for t in QUERIES)
    assert sorted(d_body["input"]) == sorted(DOCUMENTS)  # documents raw: no instruction
    assert q_body["model"] == str(real_embedding_dir)
    assert q_body["encoding_format"] == "float" and "dimensions" not in q_body
    assert q.dtype == np.float32 and q.shape == local.embed_queries(QUERIES).shape
    np.testing.assert_allclose(q, local.embed_queries(QUERIES), atol=1e-5)
    np.testing.assert_allclose(d, local.embed_documents(DOCUMENTS), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)


def test_symmetric_preset_and_raw_queries(real_embedding_dir: Path, srv: LoopbackServer) -> None:
    local, remote = _emb(real_embedding_dir, srv, instruction="semantic_similarity")
    np.testing.assert_allclose(
        remote.embed_documents(DOCUMENTS[:2]), local.embed_documents(DOCUMENTS[:2]), atol=1e-5
    )
    assert sorted(srv.bodies("/v1/embeddings")[-1]["input"]) == sorted(
        f"Instruct: {SIMILAR}\nQuery:{text}" for text in DOCUMENTS[:2]
    )
    remote.embed_queries(QUERIES[:2], instruction="")
    assert sorted(srv.bodies("/v1/embeddings")[-1]["input"]) == sorted(QUERIES[:2])


@pytest.mark.parametrize("accept", [True, False], ids=["server-truncates", "client-truncates"])
def test_matryoshka_both_ways_give_the_local_vectors(
    real_embedding_dir: Path, srv: LoopbackServer, accept: bool
) -> None:
    srv.accept_dimensions = accept
    local, remote = _emb(real_embedding_dir, srv, dimensions=32)
    got = remote.embed_documents(DOCUMENTS)
    assert got.shape == (len(DOCUMENTS), 32)
    np.testing.assert_allclose(got, local.embed_documents(DOCUMENTS), atol=1e-5)
    bodies = srv.bodies("/v1/embeddings")
    assert bodies[0]["dimensions"] == 32
    assert remote.remote is not None and remote.remote.dimensions_accepted is accept
    # Accepted: one request. Refused: the 400, then the same inputs without dimensions.
    assert len(bodies) == (1 if accept else 2)
    remote.embed_queries(QUERIES)  # the refusal is remembered: no second 400
    assert ("dimensions" in srv.bodies("/v1/embeddings")[-1]) is accept
    assert len(srv.bodies("/v1/embeddings")) == len(bodies) + 1


def test_dimensions_beyond_the_served_size_fail_clearly(
    real_embedding_dir: Path, srv: LoopbackServer
) -> None:
    srv.accept_dimensions = False
    remote = Embedder(str(real_embedding_dir), base_url=srv.url, dimensions=128)  # hidden 64
    with pytest.raises(ValueError, match=r"dimensions=128 is out of range.*64 values"):
        remote.embed_documents(["x"])
    assert Embedder(str(real_embedding_dir), base_url=srv.url).dimension == 64


def test_long_texts_are_cut_here_exactly_as_locally(
    real_embedding_dir: Path, srv: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import AutoTokenizer

    srv.max_model_len = 24  # the server refuses anything longer, as vLLM does
    local, remote = _emb(real_embedding_dir, srv, max_length=24)
    texts = [LONG, "short", "Émile Zola était un écrivain français. " * 10]
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        got = remote.embed_documents(texts)
    assert "2 of 3 texts exceeded max_length=24" in caplog.text
    np.testing.assert_allclose(got, local.embed_documents(texts), atol=1e-5)
    tok = AutoTokenizer.from_pretrained(real_embedding_dir)
    sent = srv.bodies("/v1/embeddings")[-1]["input"]
    assert "short" in sent  # a text that fits is sent untouched
    for original in texts:
        (text,) = [s for s in sent if original.startswith(s)]  # a cut text is a prefix
        ids = tok(text)["input_ids"]  # what the server computes on: 23 tokens + <|endoftext|>
        full = tok(original, add_special_tokens=False)["input_ids"]
        assert ids == [*full[: len(ids) - 1], 151643]
        assert len(ids) == min(24, len(full) + 1)


def test_batches_respect_the_servers_limit(real_embedding_dir: Path, srv: LoopbackServer) -> None:
    local, remote = _emb(real_embedding_dir, srv, batch_size=2)
    texts = [f"text number {i}" for i in range(5)]
    np.testing.assert_allclose(
        remote.embed_documents(texts), local.embed_documents(texts), atol=1e-5
    )
    sizes = sorted(len(b["input"]) for b in srv.bodies("/v1/embeddings"))
    assert sizes == [1, 2, 2]


def test_without_a_tokenizer_texts_go_whole(
    real_embedding_dir: Path, srv: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    srv.name = "served-embedding"
    try:
        remote = Embedder("served-embedding", base_url=srv.url)
        with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
            got = remote.embed_queries(QUERIES[:2])
        assert "no tokenizer for model='served-embedding'" in caplog.text
        local = Embedder(str(real_embedding_dir), device="cpu")
        np.testing.assert_allclose(got, local.embed_queries(QUERIES[:2]), atol=1e-5)
        with pytest.raises(RemoteError, match=r"/v1/embeddings answered 404: The model `other`"):
            Embedder("other", base_url=srv.url).embed_queries(["x"])
    finally:
        srv.name = None


def test_route_spelling_is_found_and_remembered(
    real_embedding_dir: Path, real_reranker_dir: Path
) -> None:
    server = LoopbackServer(real_embedding_dir, embedding_routes=("/embeddings",))
    with server.running():
        remote = Embedder(str(real_embedding_dir), base_url=server.url)  # Infinity's spelling
        remote.embed_documents(["a"])
        remote.embed_documents(["b"])
        assert [r.path for r in server.requests] == ["/v1/embeddings", "/embeddings", "/embeddings"]
        with_v1 = Embedder(str(real_embedding_dir), base_url=server.url + "/v1")
        with pytest.raises(RemoteError, match=r"404.*check base_url="):
            with_v1.embed_documents(["a"])


# -- reranking -------------------------------------------------------------------------------


def test_rerank_strings_follow_vllms_example_and_scores_equal_local(
    real_reranker_dir: Path, srv: LoopbackServer
) -> None:
    local = Reranker(str(real_reranker_dir), device="cpu")
    remote = Reranker(str(real_reranker_dir), base_url=srv.url)
    query = QUERIES[0]
    got = remote.score(query, DOCUMENTS)
    (body,) = srv.bodies("/rerank")
    assert body["query"] == f"{PREFIX}<Instruct>: {TASK}\n<Query>: {query}\n"
    assert sorted(body["documents"]) == sorted(f"<Document>: {d}{SUFFIX}" for d in DOCUMENTS)
    assert body["return_documents"] is False and body["model"] == str(real_reranker_dir)
    np.testing.assert_allclose(got, local.score(query, DOCUMENTS), atol=1e-5)
    # The server answers best first; the client puts the scores back in input order.
    ranked, expected = remote.rank(query, DOCUMENTS, top_n=3), local.rank(query, DOCUMENTS, top_n=3)
    assert [i for i, _ in ranked] == [i for i, _ in expected]


def test_rerank_pairs_group_by_query_and_custom_instruction(
    real_reranker_dir: Path, srv: LoopbackServer
) -> None:
    local = Reranker(str(real_reranker_dir), device="cpu", instruction="Find the answer please")
    remote = Reranker(
        str(real_reranker_dir), base_url=srv.url, instruction="Find the answer please", batch_size=2
    )
    pairs = [(QUERIES[i % 2], d) for i, d in enumerate(DOCUMENTS)]
    np.testing.assert_allclose(remote.score_pairs(pairs), local.score_pairs(pairs), atol=1e-5)
    bodies = srv.bodies("/rerank")
    assert {b["query"] for b in bodies} == {
        f"{PREFIX}<Instruct>: Find the answer please\n<Query>: {q}\n" for q in QUERIES[:2]
    }
    assert all(len(b["documents"]) <= 2 for b in bodies)
    assert sum(len(b["documents"]) for b in bodies) == len(pairs)
    assert remote.score("q", []) == [] and srv.bodies("/rerank") == bodies  # no request


def test_surrogates_are_repaired_before_the_request_as_locally(
    real_embedding_dir: Path, real_reranker_dir: Path, srv: LoopbackServer
) -> None:
    # A lone surrogate cannot be sent as UTF-8 JSON; a pair is the emoji it encodes. Written out
    # literally: what the documented rule gives for these strings.
    broken, fixed = "caf\u00e9 \ud83d\ude00 ok \udc00", "caf\u00e9 \U0001f600 ok \ufffd"
    local, remote = _emb(real_embedding_dir, srv)
    np.testing.assert_allclose(
        remote.embed_documents([broken]), local.embed_documents([fixed]), atol=1e-5
    )
    assert srv.bodies("/v1/embeddings")[-1]["input"] == [fixed]
    reranker = Reranker(str(real_reranker_dir), base_url=srv.url)
    reranker.score(broken, [broken])
    (body,) = srv.bodies("/rerank")
    assert body["query"].endswith(f"<Query>: {fixed}\n")
    assert body["documents"] == [f"<Document>: {fixed}{SUFFIX}"]


def test_rerank_truncation_equals_local(real_reranker_dir: Path, srv: LoopbackServer) -> None:
    local = Reranker(str(real_reranker_dir), device="cpu", max_length=96)
    remote = Reranker(str(real_reranker_dir), base_url=srv.url, max_length=96)
    srv.max_model_len = 96
    docs = [LONG, "short", DOCUMENTS[4] * 4]
    np.testing.assert_allclose(
        remote.score("a question", docs), local.score("a question", docs), atol=1e-5
    )
    sent = srv.bodies("/rerank")[-1]["documents"]
    assert f"<Document>: short{SUFFIX}" in sent  # whole
    (cut,) = [d for d in sent if d.startswith("<Document>: Die Hauptstadt")]
    assert cut.endswith(SUFFIX) and len(cut) < len(LONG)  # cut inside the document
    # A query longer than the budget: the cut body moves into the query string.
    long_query = "why " * 200
    np.testing.assert_allclose(
        remote.score(long_query, ["doc"]), local.score(long_query, ["doc"]), atol=1e-5
    )
    body = srv.bodies("/rerank")[-1]
    assert body["documents"] == [SUFFIX] and body["query"].startswith(PREFIX + "<Instruct>: ")


def test_bad_input_fails_as_locally_without_a_request(
    real_embedding_dir: Path, real_reranker_dir: Path, srv: LoopbackServer
) -> None:
    remote = Embedder(str(real_embedding_dir), base_url=srv.url)
    with pytest.raises(TypeError, match="Wrap it in a list"):
        remote.embed_queries("one string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        remote.embed_documents(["ok", 3])  # type: ignore[list-item]
    rr = Reranker(str(real_reranker_dir), base_url=srv.url)
    with pytest.raises(TypeError, match="query must be a str"):
        rr.score(None, ["d"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_n"):
        rr.rank("q", ["d"], top_n=0)
    with pytest.raises(ValueError, match="always carries an instruction"):
        Reranker(str(real_reranker_dir), base_url=srv.url, instruction="")
    assert srv.requests == []


# -- failures --------------------------------------------------------------------------------


def test_retries_503_and_429_then_succeeds(real_embedding_dir: Path, srv: LoopbackServer) -> None:
    local, remote = _emb(real_embedding_dir, srv)
    srv.fail(503, times=2)
    srv.fail(429, times=1, retry_after="0")
    np.testing.assert_allclose(
        remote.embed_documents(["a"]), local.embed_documents(["a"]), atol=1e-5
    )
    assert len(srv.requests) == 4  # 503, 503, 429, 200


def test_retries_are_bounded(real_reranker_dir: Path, srv: LoopbackServer) -> None:
    remote = Reranker(str(real_reranker_dir), base_url=srv.url, max_retries=2)
    srv.fail(503, times=10)
    with pytest.raises(RemoteError, match=r"answered 503 \(injected 503\) 3 times; max_retries=2"):
        remote.score("q", ["d"])
    assert len(srv.requests) == 3


def test_retry_after_is_honoured(real_embedding_dir: Path, srv: LoopbackServer) -> None:
    remote = Embedder(str(real_embedding_dir), base_url=srv.url)
    srv.fail(503, times=1, retry_after="0.4")
    start = time.perf_counter()
    remote.embed_documents(["a"])
    assert time.perf_counter() - start >= 0.4


def test_401_names_the_api_key_variable(
    real_embedding_dir: Path,
    real_reranker_dir: Path,
    srv: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    srv.api_key = "s3cret"
    emb = Embedder(str(real_embedding_dir), base_url=srv.url)
    with pytest.raises(RemoteError, match=r"401.*QWEN3_RAG_EMBED_API_KEY \(it is not set"):
        emb.embed_queries(["q"])
    monkeypatch.setenv("QWEN3_RAG_EMBED_API_KEY", "wrong")
    with pytest.raises(RemoteError, match="is set: check its value"):
        emb.embed_queries(["q"])
    monkeypatch.setenv("QWEN3_RAG_EMBED_API_KEY", "s3cret")
    emb.embed_queries(["q"])
    assert srv.requests[-1].headers["Authorization"] == "Bearer s3cret"
    rr = Reranker(str(real_reranker_dir), base_url=srv.url)
    with pytest.raises(RemoteError, match="QWEN3_RAG_RERANK_API_KEY"):
        rr.score("q", ["d"])
    monkeypatch.setenv("MY_RERANK_KEY", "s3cret")
    Reranker(str(real_reranker_dir), base_url=srv.url, api_key_env="MY_RERANK_KEY").score(
        "q", ["d"]
    )
    assert "s3cret" not in repr(emb) + repr(emb.options)


def test_a_server_that_is_down_fails_clearly_and_quickly(real_embedding_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    emb = Embedder(str(real_embedding_dir), base_url=url, max_retries=2).load()
    start = time.perf_counter()
    with pytest.raises(
        RemoteError,
        match=rf"cannot reach the embedding server at {url}/v1/embeddings .*3 attempts.*"
        r"is it running\? Check base_url=",
    ):
        emb.embed_queries(["q"])
    assert time.perf_counter() - start < 5
    with pytest.raises(OSError, match="--rerank-url or \\$QWEN3_RAG_RERANK_URL"):
        Reranker(str(real_embedding_dir), base_url=url, max_retries=0).score("q", ["d"])


def test_timeout(real_embedding_dir: Path, srv: LoopbackServer) -> None:
    emb = Embedder(str(real_embedding_dir), base_url=srv.url, timeout=0.3).load()
    srv.delay = 6.0
    start = time.perf_counter()
    with pytest.raises(RemoteError, match=r"did not answer within timeout=0.3 s"):
        emb.embed_queries(["q"])
    assert time.perf_counter() - start < 5  # it gave up long before the answer
    assert len(srv.requests) == 1  # a timeout is not retried


# -- async -----------------------------------------------------------------------------------


async def test_32_concurrent_async_calls_overlap_and_never_block_the_loop(
    real_embedding_dir: Path,
    real_reranker_dir: Path,
    srv: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = Embedder(str(real_embedding_dir), device="cpu")
    expected = local.embed_queries(QUERIES)
    emb = Embedder(str(real_embedding_dir), base_url=srv.url)
    rr = Reranker(str(real_reranker_dir), base_url=srv.url)
    expected_scores = Reranker(str(real_reranker_dir), device="cpu").score(
        QUERIES[0], DOCUMENTS[:2]
    )
    emb.load()
    rr.load()  # tokenizers loaded before the clock starts

    def no_threads(*args: object, **kwargs: object) -> None:
        raise AssertionError("a remote async call used a worker thread")

    monkeypatch.setattr(asyncio, "to_thread", no_threads)
    # The server holds every request until the ticker opens the gate: if a call blocked the
    # event loop while its request was in flight, the ticker could not run and the gate
    # would never open.
    srv.gate = gate = threading.Event()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not gate.is_set():
            ticks += 1
            if srv.in_flight >= 8 or ticks >= 500:
                gate.set()
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    try:
        results = await asyncio.gather(
            *(emb.aembed_queries([QUERIES[i % 4]]) for i in range(28)),
            *(rr.ascore(QUERIES[0], DOCUMENTS[:2]) for _ in range(4)),
        )
    finally:
        gate.set()
        srv.gate = None
        await tick_task
    for i, vectors in enumerate(results[:28]):
        np.testing.assert_allclose(vectors[0], expected[i % 4], atol=1e-5)
    for scores in results[28:]:
        np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    assert srv.max_in_flight >= 8  # the calls overlapped at the server
    assert len(srv.requests) == 32
    await emb.aclose()
    await rr.aclose()


async def test_async_rank_and_documents_equal_sync(
    real_embedding_dir: Path, real_reranker_dir: Path, srv: LoopbackServer
) -> None:
    emb = Embedder(str(real_embedding_dir), base_url=srv.url, dimensions=32, batch_size=2)
    np.testing.assert_allclose(
        await emb.aembed_documents(DOCUMENTS), emb.embed_documents(DOCUMENTS), atol=1e-6
    )
    assert (await emb.aembed_documents([])).shape == (0, 32)
    rr = Reranker(str(real_reranker_dir), base_url=srv.url, batch_size=2)
    assert await rr.arank(QUERIES[1], DOCUMENTS, top_n=3) == rr.rank(QUERIES[1], DOCUMENTS, top_n=3)
    pairs = [(QUERIES[0], DOCUMENTS[0]), (QUERIES[1], DOCUMENTS[1])]
    np.testing.assert_allclose(await rr.ascore_pairs(pairs), rr.score_pairs(pairs), atol=1e-6)
    srv.fail(503, times=1)
    assert len(await rr.ascore("q", ["d"])) == 1  # retried on the loop


async def test_local_async_still_runs_in_a_worker_thread(real_embedding_dir: Path) -> None:
    emb = Embedder(str(real_embedding_dir), device="cpu")
    np.testing.assert_array_equal(await emb.aembed_queries(["q"]), emb.embed_queries(["q"]))


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"base_url": "localhost:8000"}, ValueError, "base_url must be an http"),
        ({"base_url": 8000}, TypeError, "base_url must be a URL"),
        ({"timeout": 0}, ValueError, "timeout must be a number of seconds > 0"),
        ({"max_retries": -1}, ValueError, "max_retries must be an integer >= 0"),
        ({"api_key_env": "sk-abc def"}, ValueError, "never the key itself"),
    ],
)
def test_bad_remote_options_name_the_argument(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Embedder("m", **kwargs)
    with pytest.raises(error, match=match):
        Reranker("m", **kwargs)


def test_remote_options_and_repr() -> None:
    emb = Embedder("Qwen/Qwen3-Embedding-0.6B", base_url="http://h:8000/v1/", timeout=5)
    assert emb.base_url == "http://h:8000/v1"
    assert repr(emb) == (
        "Embedder(model='Qwen/Qwen3-Embedding-0.6B', base_url='http://h:8000/v1', timeout=5.0)"
    )
    assert emb.remote is not None and emb.remote.urls == ["http://h:8000/v1/embeddings"]
    assert Embedder("m").remote is None and Embedder("m").base_url is None


def test_chroma_config_persists_the_server_never_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    pytest.importorskip("chromadb")
    from qwen3_rag.chroma import Qwen3EmbeddingFunction

    monkeypatch.setenv("MY_KEY", "s3cret")
    ef = Qwen3EmbeddingFunction("./served", base_url="http://h:8000/", api_key_env="MY_KEY")
    config = ef.get_config()
    assert config["base_url"] == "http://h:8000" and config["api_key_env"] == "MY_KEY"
    assert config["model"] == "./served"  # a served name is kept as written
    assert "s3cret" not in json.dumps(config)
    again = Qwen3EmbeddingFunction.build_from_config(config)
    assert again.embedder.base_url == "http://h:8000"
    assert again.embedder.options.api_key_env == "MY_KEY"
    assert "base_url" not in Qwen3EmbeddingFunction("Qwen/Qwen3-Embedding-0.6B").get_config()
