"""``python -m benchmarks.remote``: what the remote client costs, beside the server's own time.

A loopback model server runs in a separate process (stdlib ``http.server``, threads) and
serves ``/v1/embeddings`` and ``/rerank`` on a random-weight model with the real Qwen3
tokenizer (the tiny shape by default, so the model's compute does not hide the overhead):
embeddings through the local core (``qwen3_rag.Embedder``), reranking through a plain
transformers forward of the concatenated strings, as vLLM does. It measures its own handling
time of every request (body read to answer written). The client is qwen3_rag's remote
backend, so the overhead (client wall time minus server handling time) is everything the
client adds: formatting, tokenization for client-side truncation, JSON, HTTP on loopback,
ordering and normalising the answer.

Example:
    python -m benchmarks.remote                   # tiny model, prints a Markdown table
    python -m benchmarks.remote --output REMOTE.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks import models

TEXTS = [
    f"Paragraph {i}: the capital of country number {i} is a large city on a river, with "
    f"museums, a university and about {i * 37 % 900 + 100} thousand inhabitants."
    for i in range(64)
]


def _serve(embedding_dir: str, reranker_dir: str, port_out: Any) -> None:
    """The server process: answers until killed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_rag import Embedder, tune_cpu_threads

    tune_cpu_threads()
    embedder = Embedder(embedding_dir, device="cpu").load()
    tok = AutoTokenizer.from_pretrained(reranker_dir)
    lm: Any = AutoModelForCausalLM.from_pretrained(reranker_dir, dtype=torch.float32)
    lm.eval()
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    lock = threading.Lock()
    spans: list[tuple[float, float]] = []  # (start, end) of each request's handling

    def embed(body: dict[str, Any]) -> dict[str, Any]:
        vectors = embedder.embed_documents(body["input"])  # raw: the client formatted them
        if body.get("dimensions"):
            vectors = vectors[:, : body["dimensions"]]
        data = [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data}

    def rerank(body: dict[str, Any]) -> dict[str, Any]:
        results = []
        for i, doc in enumerate(body["documents"]):
            ids = tok(body["query"] + doc, return_tensors="pt")["input_ids"]
            with torch.inference_mode():
                hidden = lm.model(input_ids=ids).last_hidden_state[0, -1]
                logits = lm.lm_head(hidden)
            score = torch.sigmoid(logits[yes] - logits[no]).item()
            results.append({"index": i, "relevance_score": score})
        return {"results": results}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as real servers do: no 40 ms delayed-ACK stalls

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            with lock:
                busy = _union(spans)
                self._send(json.dumps({"seconds": busy, "requests": len(spans)}).encode())

        def do_POST(self) -> None:
            start = time.perf_counter()
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/reset":
                with lock:
                    spans.clear()
                self._send(b"{}")
                return
            with lock:  # one model at a time, like an engine's single worker
                answer = embed(body) if self.path == "/v1/embeddings" else rerank(body)
            data = json.dumps(answer).encode()
            with lock:
                spans.append((start, time.perf_counter()))
            self._send(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.put(httpd.server_address[1])
    httpd.serve_forever()


def _union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one span (the server's busy time)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


@dataclass
class Row:
    """One scenario's totals."""

    scenario: str
    requests: int
    texts: int
    client_s: float
    server_s: float

    @property
    def overhead_ms_per_request(self) -> float:
        return (self.client_s - self.server_s) / self.requests * 1000

    @property
    def overhead_ms_per_text(self) -> float:
        return (self.client_s - self.server_s) / self.texts * 1000


def _stats(url: str) -> dict[str, float]:
    import httpx

    data: dict[str, float] = httpx.get(f"{url}/stats").json()
    return data


def _measure(url: str, scenario: str, texts: int, run: Callable[[], Any], repeats: int) -> Row:
    import httpx

    run()  # warm: connections, tokenizer, first forward
    httpx.post(f"{url}/reset", json={})
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    client = time.perf_counter() - start
    texts *= repeats
    stats = _stats(url)
    return Row(scenario, int(stats["requests"]), texts, client, float(stats["seconds"]))


def run(
    shape: str, output: Path | None, *, repeats: int = 5, cache: Path = models.CACHE
) -> list[Row]:
    """Build the models, start the server, measure every scenario; returns the rows."""
    from qwen3_rag import Embedder, Reranker, tune_cpu_threads

    tune_cpu_threads()
    cache = cache / f"remote-{shape}"
    dims = models.TINY if shape == "tiny" else models.QWEN3_06B
    emb_dir = models.build(cache / "embedding", "embedding", shape=dims)
    rr_dir = models.build(cache / "reranker", "reranker", shape=dims, seed=1)
    ctx = multiprocessing.get_context("spawn")
    port_out = ctx.Queue()
    server = ctx.Process(target=_serve, args=(str(emb_dir), str(rr_dir), port_out), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{port_out.get(timeout=300)}"
        emb = Embedder(str(emb_dir), base_url=url, batch_size=32).load()
        rr = Reranker(str(rr_dir), base_url=url, batch_size=16).load()
        query = "Which city has a university and museums?"
        n = repeats

        def one_by_one() -> None:
            for text in TEXTS[:32]:
                emb.embed_queries([text])

        async def gathered() -> None:
            await asyncio.gather(*(emb.aembed_queries([t]) for t in TEXTS))

        rows = [
            _measure(url, "embed, 32 texts per request", 64, lambda: emb.embed_documents(TEXTS), n),
            _measure(url, "embed, 1 query per request", 32, one_by_one, n),
            _measure(
                url, "embed, 64 concurrent async calls", 64, lambda: asyncio.run(gathered()), n
            ),
            _measure(
                url, "rerank, 16 documents per request", 64, lambda: rr.score(query, TEXTS), n
            ),
        ]
    finally:
        server.kill()
        server.join(timeout=10)
    report = _markdown(rows, shape)
    sys.stdout.write(report)
    if output is not None:
        output.write_text(report)
    return rows


def _markdown(rows: list[Row], shape: str) -> str:
    lines = [
        f"# Remote client overhead ({shape} model, {platform.machine()}, loopback)",
        "",
        "Overhead = client wall time - server busy time (the union of its requests' handling "
        "spans): formatting, tokenization for client-side truncation, JSON, HTTP, "
        "normalisation.",
        "",
        "| scenario | requests | texts | client s | server s | overhead ms/request | "
        "overhead ms/text | overhead / server |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ratio = (r.client_s - r.server_s) / r.server_s if r.server_s else float("nan")
        lines.append(
            f"| {r.scenario} | {r.requests} | {r.texts} | {r.client_s:.3f} | {r.server_s:.3f} | "
            f"{r.overhead_ms_per_request:.2f} | {r.overhead_ms_per_text:.2f} | {ratio:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.remote", description=__doc__)
    parser.add_argument("--shape", choices=["tiny", "0.6b"], default="tiny")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each scenario (5)")
    parser.add_argument("--cache", type=Path, default=models.CACHE, help="model folders")
    args = parser.parse_args(argv)
    run(args.shape, args.output, repeats=args.repeats, cache=args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
