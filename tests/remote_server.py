"""A loopback model server for the remote-backend tests: the two routes, written literally.

``/v1/embeddings`` does what vLLM does for an embedding model: tokenize each input with the
model's own tokenizer (special tokens added: the Qwen3-Embedding tokenizer appends
``<|endoftext|>``), run the model one text at a time, pool the last position, keep
``dimensions`` values if asked (or refuse them, as vLLM does for Qwen3), L2-normalise.
``/rerank`` does what vLLM's "LLM as reranker" path does for Qwen3-Reranker: tokenize the
query string and the document string *concatenated*, run the causal LM, and answer
``softmax([logit("no"), logit("yes")])[1]``, results sorted best first. Nothing here uses
qwen3_rag: the server is an independent reference.

The server records every request (path, headers, JSON body), tracks how many requests are in
flight at once, and can be told to fail (a status ``n`` times, a missing API key, a delay).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch

from tests.models import load_reference

VLLM_MRL_ERROR = (
    'Model "{model}" does not support matryoshka representation, changing output dimensions '
    "will lead to poor results."
)


@dataclass
class Fault:
    status: int
    times: int
    retry_after: str | None = None


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class LoopbackServer:
    """A literal model server on 127.0.0.1 (a free port), started and stopped by the test.

    Args:
        embedding_dir: Model folder served on the embeddings routes.
        reranker_dir: Model folder served on the rerank routes.
        name: The served model name (requests for another get a 404, as vLLM answers).
        accept_dimensions: Take ``dimensions`` (True) or refuse it with vLLM's 400 (False).
        api_key: Require ``Authorization: Bearer <api_key>``.
        append_eos: Tokenize embedding inputs with special tokens (the official tokenizer
            then appends ``<|endoftext|>``); False imitates a conversion that does not.
        rerank_scores: ``"probability"`` (P(yes)) or ``"logit"`` (a misconfigured server).
        max_model_len: Refuse inputs longer than this many tokens (vLLM's 400).
        embedding_routes: Paths answering embeddings (others 404).
        delay: Seconds every request waits (outside the model lock) before answering.
        gate: When set, every request waits (up to 20 s) for this event before answering.
    """

    embedding_dir: Path | None = None
    reranker_dir: Path | None = None
    name: str | None = None
    accept_dimensions: bool = True
    api_key: str | None = None
    append_eos: bool = True
    rerank_scores: str = "probability"
    max_model_len: int = 100_000
    embedding_routes: tuple[str, ...] = ("/v1/embeddings",)
    rerank_routes: tuple[str, ...] = ("/rerank", "/v1/rerank")
    delay: float = 0.0
    gate: threading.Event | None = None
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    handling_seconds: float = 0.0

    def __post_init__(self) -> None:
        from transformers import AutoTokenizer, Qwen3ForCausalLM, Qwen3Model

        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        if self.embedding_dir is not None:
            self.emb_tok = AutoTokenizer.from_pretrained(self.embedding_dir)
            self.emb_model = load_reference(Qwen3Model, self.embedding_dir)
        if self.reranker_dir is not None:
            self.rr_tok = AutoTokenizer.from_pretrained(self.reranker_dir)
            self.rr_model = load_reference(Qwen3ForCausalLM, self.reranker_dir)
            self.yes_id = self.rr_tok.convert_tokens_to_ids("yes")
            self.no_id = self.rr_tok.convert_tokens_to_ids("no")
        self._httpd: ThreadingHTTPServer | None = None

    # -- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def fail(self, status: int, times: int = 1, retry_after: str | None = "0") -> None:
        self.faults.append(Fault(status, times, retry_after))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.max_in_flight = 0
            self.handling_seconds = 0.0

    def bodies(self, route: str) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith(route)]

    @contextmanager
    def running(self) -> Iterator[LoopbackServer]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as real servers do: no delayed-ACK stalls

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server._handle(self)

        handlers: list[tuple[threading.Thread, socket.socket]] = []

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                """One tracked thread per connection, so that closing can wait for them all."""
                t = threading.Thread(
                    target=self.process_request_thread, args=(request, client_address), daemon=True
                )
                handlers.append((t, request))
                t.start()

        self._httpd = Server(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._httpd.shutdown()
            # End idle keep-alive connections, then wait for every handler: one still computing
            # when the process exits would be killed inside torch ("terminate called ...").
            for _, conn in handlers:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            for t, _ in handlers:
                t.join(timeout=60)
            self._httpd.server_close()
            thread.join(timeout=10)

    # -- handling --------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.perf_counter()
        length = int(handler.headers.get("Content-Length", "0"))
        raw = handler.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        with self._lock:
            self.requests.append(Request(handler.path, dict(handler.headers), body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self.faults[0] if self.faults else None
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.pop(0)
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.gate is not None and not self.gate.wait(timeout=20):
                raise RuntimeError("the gate never opened")
            status, payload, headers = self._answer(handler, body, fault)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.handling_seconds += time.perf_counter() - started
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _answer(
        self, handler: BaseHTTPRequestHandler, body: dict[str, Any], fault: Fault | None
    ) -> tuple[int, Any, dict[str, str]]:
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return fault.status, _error(f"injected {fault.status}", fault.status), headers
        authorization = handler.headers.get("Authorization")
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return 401, _error("Unauthorized", 401), {}
        path = handler.path
        if path in self.embedding_routes and self.embedding_dir is not None:
            route = "embed"
        elif path in self.rerank_routes and self.reranker_dir is not None:
            route = "rerank"
        else:
            return 404, {"detail": "Not Found"}, {}
        if self.name is not None and body.get("model") != self.name:
            return 404, _error(f"The model `{body.get('model')}` does not exist.", 404), {}
        with self._model_lock:
            if route == "embed":
                return self._embeddings(body)
            return self._rerank(body)

    def _too_long(self, n: int) -> tuple[int, Any, dict[str, str]]:
        message = (
            f"This model's maximum context length is {self.max_model_len} tokens. However, "
            f"you requested {n} tokens in the input."
        )
        return 400, _error(message, 400), {}

    def _embeddings(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        dims = body.get("dimensions")
        if dims is not None and not self.accept_dimensions:
            return 400, _error(VLLM_MRL_ERROR.format(model=body.get("model")), 400), {}
        inputs = body["input"]
        rows = []
        for text in inputs:
            ids = self.emb_tok(text, add_special_tokens=self.append_eos)["input_ids"]
            if len(ids) > self.max_model_len:
                return self._too_long(len(ids))
            with torch.no_grad():
                hidden = self.emb_model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
            if dims is not None:
                hidden = hidden[:dims]
            rows.append(torch.nn.functional.normalize(hidden, dim=-1).tolist())
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(rows)]
        return 200, {"object": "list", "data": data, "model": body.get("model")}, {}

    def _rerank(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        query = body["query"]
        results = []
        for index, document in enumerate(body["documents"]):
            ids = self.rr_tok(query + document)["input_ids"]
            if len(ids) > self.max_model_len:
                return self._too_long(len(ids))
            with torch.no_grad():  # the LM head at the last position only (that is all it reads)
                hidden = self.rr_model.model(input_ids=torch.tensor([ids])).last_hidden_state
                logits = self.rr_model.lm_head(hidden[0, -1])
            pair = torch.stack([logits[self.no_id], logits[self.yes_id]])
            if self.rerank_scores == "logit":
                score = float(pair[1] - pair[0])
            else:
                score = float(torch.softmax(pair, dim=0)[1])
            results.append({"index": index, "document": None, "relevance_score": score})
        results.sort(key=lambda r: -r["relevance_score"])  # vLLM answers best first
        return 200, {"id": "rerank-1", "model": body.get("model"), "results": results}, {}


def _error(message: str, code: int) -> dict[str, Any]:
    """vLLM's error body."""
    return {"object": "error", "message": message, "type": "BadRequestError", "code": code}
