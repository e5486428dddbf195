"""Model servers: the Qwen3 recipe applied on the client, the model run by vLLM, TEI or Infinity.

:class:`~qwen3_rag.Embedder` and :class:`~qwen3_rag.Reranker` built with ``base_url=`` hold
one of the backends below instead of local weights. They format every input exactly as the
local path does (the templates of :mod:`qwen3_rag.instructions`, the cut of
:func:`qwen3_rag.batching.encode_cut`), then send it:

* embeddings: ``POST {base_url}/v1/embeddings``, the OpenAI-compatible route vLLM, TEI,
  Infinity and llama.cpp serve, with ``{"model", "input", "encoding_format": "float"}`` and
  ``"dimensions"`` for a Matryoshka size. A server that refuses ``dimensions`` (vLLM does for
  Qwen3-Embedding unless it is started with ``--hf-overrides '{"is_matryoshka": true}'``) is
  detected on its first 400 answer; from then on the client keeps the first ``dimensions``
  values itself. Either way every vector is L2-normalised here, so the vectors are the same.
* reranking: ``POST {base_url}/rerank`` (vLLM, Infinity; also ``/v1/rerank``) with
  ``{"model", "query", "documents", "return_documents": false}``, answered with
  ``{"results": [{"index", "relevance_score"}]}``. The query is sent as
  ``RERANK_PREFIX + "<Instruct>: {instruction}\\n<Query>: {query}\\n"`` and each document as
  ``"<Document>: {document}" + RERANK_SUFFIX``, as vLLM's own Qwen3-Reranker example does, so
  a server that concatenates the two (vLLM's "LLM as reranker" path) scores the exact recipe
  input and returns the model's P(yes).

``base_url`` is the server's root (``http://host:8000``) or its ``/v1`` URL; both work. If the
preferred route answers 404, the other spelling (``/embeddings`` for Infinity's default,
``/v1/rerank``) is tried once and remembered.

What the client guarantees, and what it cannot:

* the templates, the instruction (queries only, or every text for symmetric presets), the
  reranker's prefix and suffix: always, by construction;
* truncation: when the model's tokenizer is available here (``model`` is a local folder, or a
  hub id in the cache or downloadable: only the tokenizer files are read), texts longer than
  ``max_length`` are cut here exactly as locally (same token ids), then sent as text that
  tokenizes back to those ids. Without a tokenizer texts are sent whole, and the server cuts
  them (or refuses them) its own way;
* ``<|endoftext|>`` at the end of every embedding input: added by the server's tokenizer (the
  official Qwen3-Embedding tokenizer appends it; some conversions do not). The client cannot
  see it; ``qwen3-rag check-server`` does (vectors without it differ visibly);
* numerics: the server's dtype and kernels decide the last digits (bf16 serving differs from
  the float32 reference around the third decimal).

Requests are batched under the server's limit (``batch_size`` inputs per request; the server
schedules its own token batches, so ``max_batch_tokens`` does not apply), retried with
exponential backoff on 429 and 5xx answers and on failed connections (``max_retries``;
``Retry-After`` is honoured), and time out after ``timeout`` seconds. The API key is read from
an environment variable at each request (``QWEN3_RAG_EMBED_API_KEY`` /
``QWEN3_RAG_RERANK_API_KEY``, or the one ``api_key_env`` names) and never stored. Async calls
(``aembed_queries``, ``ascore`` ...) use ``httpx.AsyncClient`` on the caller's event loop: no
worker thread.

:func:`check_server` embeds and reranks a fixed probe set locally and through servers and
reports the largest differences (the ``qwen3-rag check-server`` command).

Example:
    >>> from qwen3_rag import Embedder
    >>> emb = Embedder("Qwen/Qwen3-Embedding-0.6B", base_url="http://localhost:8000/v1")
    >>> emb.remote.urls
    ['http://localhost:8000/v1/embeddings']
    >>> emb.embed_queries(["What is the capital of China?"])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import os
import random
import threading
import time
import unicodedata
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from qwen3_rag.batching import encode_cut, repaired, rerank_budget
from qwen3_rag.errors import RemoteError
from qwen3_rag.instructions import (
    RERANK_PREFIX,
    RERANK_SUFFIX,
    format_rerank_body,
    format_rerank_document,
    format_rerank_query,
)
from qwen3_rag.loading import ModelLoadError, ModelSource, load_fast_tokenizer, shared
from qwen3_rag.options import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    EMBED_API_KEY_ENV,
    RERANK_API_KEY_ENV,
    EmbedderOptions,
    RerankerOptions,
    check_base_url,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "EMBED_API_KEY_ENV",
    "EMBED_URL_ENV",
    "RERANK_API_KEY_ENV",
    "RERANK_URL_ENV",
    "RemoteBackend",
    "RemoteEmbeddingBackend",
    "RemoteError",
    "RemoteRerankBackend",
    "ServerReport",
    "check_server",
]

logger = logging.getLogger(__name__)

#: The environment variable the ``qwen3-rag`` command reads an embedding server's URL from.
EMBED_URL_ENV = "QWEN3_RAG_EMBED_URL"
#: The environment variable the ``qwen3-rag`` command reads a reranking server's URL from.
RERANK_URL_ENV = "QWEN3_RAG_RERANK_URL"

#: Answers worth retrying: rate limited, or the server failed or is restarting.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: First backoff delay in seconds; it doubles with each retry (with jitter), up to the cap.
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
#: The longest ``Retry-After`` wait honoured, in seconds.
MAX_RETRY_AFTER_SECONDS = 30.0
#: Requests one async call keeps in flight at once.
MAX_CONCURRENT_REQUESTS = 4
#: Trailing tokens a truncated text may lose so that its text tokenizes back exactly.
_ROUND_TRIP_SLACK = 8


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'base_url= (a model server) needs httpx: pip install "qwen3-rag[remote]"'
        ) from exc
    return httpx


def _server_message(response: httpx.Response) -> str:
    """The error text of an answer, whatever the server's error format."""
    try:
        data = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        for key in ("message", "detail", "error"):
            if data.get(key):
                return str(data[key])[:300]
    return json.dumps(data)[:300]


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


@dataclass
class _Retry:
    delay: float


@dataclass
class _Answer:
    data: Any


class _Transport:
    """One server route: URL spelling, API key, retries, and the sync and async clients."""

    def __init__(
        self,
        base_url: str,
        urls: list[str],
        *,
        what: str,
        api_key_env: str,
        url_hint: str,
        timeout: float,
        max_retries: int,
    ) -> None:
        self.base_url = base_url
        self.urls = urls
        self.what = what
        self.api_key_env = api_key_env
        self.url_hint = url_hint
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = BACKOFF_SECONDS
        self.url: str | None = None  # the spelling that answered
        self._first_404 = ""  # what the preferred spelling answered, for the error message
        self._client: httpx.Client | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._aclients = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # -- clients ---------------------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = _httpx().Client(timeout=self.timeout)
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._aclients.get(loop)
            if client is None:
                client = _httpx().AsyncClient(timeout=self.timeout)
                self._aclients[loop] = client
            return client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        with self._lock:
            client = self._aclients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env, "").strip()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _candidates(self) -> list[str]:
        return [self.url] if self.url is not None else self.urls

    # -- one request -----------------------------------------------------------------------

    def post(self, payload: dict[str, Any]) -> Any:
        """POST ``payload`` as JSON, retrying as configured; returns the decoded answer."""
        httpx = _httpx()
        client = self._sync_client()
        for url in self._candidates():
            attempt = 0
            while True:
                try:
                    response = client.post(url, json=payload, headers=self._headers())
                except httpx.TransportError as exc:
                    outcome: _Answer | _Retry | None = self._failed(url, exc, attempt)
                else:
                    outcome = self._answered(url, response, attempt)
                if outcome is None:
                    break  # 404: try the next spelling of the route
                if isinstance(outcome, _Answer):
                    return outcome.data
                time.sleep(outcome.delay)
                attempt += 1
        raise AssertionError("unreachable: the last route raises")  # pragma: no cover

    async def apost(self, payload: dict[str, Any]) -> Any:
        """Async :meth:`post`, on the running event loop."""
        httpx = _httpx()
        client = self._async_client()
        for url in self._candidates():
            attempt = 0
            while True:
                try:
                    response = await client.post(url, json=payload, headers=self._headers())
                except httpx.TransportError as exc:
                    outcome: _Answer | _Retry | None = self._failed(url, exc, attempt)
                else:
                    outcome = self._answered(url, response, attempt)
                if outcome is None:
                    break
                if isinstance(outcome, _Answer):
                    return outcome.data
                await asyncio.sleep(outcome.delay)
                attempt += 1
        raise AssertionError("unreachable: the last route raises")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        honoured = _retry_after(retry_after)
        if honoured is not None:
            return honoured
        ceiling = min(MAX_BACKOFF_SECONDS, self.backoff * float(2**attempt))
        return ceiling * (0.5 + random.random() / 2)

    def _failed(self, url: str, exc: Exception, attempt: int) -> _Retry:
        httpx = _httpx()
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            raise RemoteError(
                f"the {self.what} server at {url} did not answer within timeout="
                f"{self.timeout:g} s: raise timeout= or lower batch_size= (inputs per request)",
                url=url,
            ) from exc
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if attempt < self.max_retries:
            delay = self._delay(attempt)
            logger.info(
                "%s server at %s: %s; retry %d of %d in %.1f s",
                self.what,
                url,
                reason,
                attempt + 1,
                self.max_retries,
                delay,
            )
            return _Retry(delay)
        raise RemoteError(
            f"cannot reach the {self.what} server at {url} ({reason}; {attempt + 1} "
            f"attempt{'s' if attempt else ''}): is it running? Check {self.url_hint}",
            url=url,
        ) from exc

    def _answered(
        self, url: str, response: httpx.Response, attempt: int
    ) -> _Answer | _Retry | None:
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                raise RemoteError(
                    f"the {self.what} server at {url} answered {status} with no JSON: is "
                    f"{self.url_hint} the URL of a model server?",
                    url=url,
                    status=status,
                ) from None
            self.url = url
            return _Answer(data)
        said = _server_message(response)
        if status == 404 and self.url is None and url != self.urls[-1]:
            logger.debug("%s: 404 (%s); trying the next route spelling", url, said)
            self._first_404 = f"{url} answered 404: {said}"
            return None
        if status in (401, 403):
            set_or_not = "is set: check its value" if self._headers() else "is not set"
            raise RemoteError(
                f"the {self.what} server at {url} refused the request ({status}: {said}): "
                f"put its API key in the environment variable {self.api_key_env} (it "
                f"{set_or_not}; api_key_env= names another variable)",
                url=url,
                status=status,
                server_message=said,
            )
        if status in RETRY_STATUSES:
            if attempt < self.max_retries:
                delay = self._delay(attempt, response.headers.get("retry-after"))
                logger.info(
                    "%s server at %s answered %d; retry %d of %d in %.1f s",
                    self.what,
                    url,
                    status,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                return _Retry(delay)
            raise RemoteError(
                f"the {self.what} server at {url} answered {status} ({said}) {attempt + 1} "
                f"time{'s' if attempt else ''}; max_retries={self.max_retries}",
                url=url,
                status=status,
                server_message=said,
            )
        hint = ""
        if status == 404:
            earlier = f"; {self._first_404}" if self._first_404 and self.url is None else ""
            hint = f"{earlier}: check {self.url_hint} and model (the served model name)"
        raise RemoteError(
            f"the {self.what} server at {url} refused the request ({status}: {said}){hint}",
            url=url,
            status=status,
            server_message=said,
        )


def embeddings_urls(base_url: str) -> list[str]:
    """The URLs tried for embeddings, preferred first.

    Example:
        >>> embeddings_urls("http://h:8000")
        ['http://h:8000/v1/embeddings', 'http://h:8000/embeddings']
        >>> embeddings_urls("http://h:8000/v1")
        ['http://h:8000/v1/embeddings']
    """
    base = check_base_url(base_url)
    if base.endswith("/v1"):
        return [f"{base}/embeddings"]
    return [f"{base}/v1/embeddings", f"{base}/embeddings"]


def rerank_urls(base_url: str) -> list[str]:
    """The URLs tried for reranking, preferred first.

    Example:
        >>> rerank_urls("http://h:8000")
        ['http://h:8000/rerank', 'http://h:8000/v1/rerank']
        >>> rerank_urls("http://h:8000/v1")
        ['http://h:8000/v1/rerank', 'http://h:8000/rerank']
    """
    base = check_base_url(base_url)
    if base.endswith("/v1"):
        return [f"{base}/rerank", f"{base.removesuffix('/v1')}/rerank"]
    return [f"{base}/rerank", f"{base}/v1/rerank"]


def _may_exceed(text: str, tokens: int) -> bool:
    """Whether ``text`` can be longer than ``tokens`` tokens.

    A byte-level BPE token (Qwen3's) covers at least one byte of the NFC-normalised text, so a
    text of at most ``tokens`` such bytes never needs cutting and is not even tokenized.
    """
    return len(unicodedata.normalize("NFC", text).encode("utf-8")) > tokens


def _text_of(tokenizer: Any, ids: list[int]) -> str:
    """Text that tokenizes back to ``ids`` exactly (a few trailing tokens dropped if needed).

    A cut can split a character's bytes or a word whose pieces re-merge differently; then
    the last tokens are dropped until the text round-trips.
    """
    for end in range(len(ids), max(len(ids) - _ROUND_TRIP_SLACK, 0) - 1, -1):
        text: str = tokenizer.decode(ids[:end], skip_special_tokens=False)
        if tokenizer.encode(text, add_special_tokens=False).ids == ids[:end]:
            if end < len(ids):
                logger.debug("truncated text sent %d token(s) short to round-trip", len(ids) - end)
            return text
    return str(tokenizer.decode(ids, skip_special_tokens=False))


class RemoteBackend:
    """What the two remote backends share: the transport, the tokenizer, the limits.

    Attributes:
        base_url: The server's URL as given (no trailing slash).
        model: The served model name.
        transport: The route, retries and HTTP clients.
    """

    what = "model"
    url_env = ""

    def __init__(
        self,
        base_url: str,
        model: str,
        urls: list[str],
        *,
        api_key_env: str,
        timeout: float,
        max_retries: int,
        batch_size: int,
        max_length: int,
        source: ModelSource | None,
        show_progress: bool,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.show_progress = show_progress
        self.source = source if source is not None else ModelSource(model)
        self.transport = _Transport(
            self.base_url,
            urls,
            what=self.what,
            api_key_env=api_key_env,
            url_hint=f"base_url={self.base_url!r} (CLI: {self.url_flag} or ${self.url_env})",
            timeout=timeout,
            max_retries=max_retries,
        )
        self._tokenizer: Any = None
        self._tokenizer_tried = False
        self._tokenizer_lock = threading.Lock()

    url_flag = ""

    @property
    def urls(self) -> list[str]:
        """The URLs this backend sends to (the one that answered, once one has)."""
        return self.transport._candidates()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, model={self.model!r})"

    def tokenizer(self) -> Any | None:
        """The model's tokenizer for client-side truncation, or ``None`` if it is not at hand.

        Loaded once per process and model (shared by every backend, dropped by
        :func:`~qwen3_rag.clear_cache`), from the local folder or the hub cache named by
        ``model`` (only the tokenizer files). When it cannot be loaded, one warning says
        that the server will truncate.
        """
        with self._tokenizer_lock:
            if not self._tokenizer_tried:
                self._tokenizer_tried = True
                try:
                    self._tokenizer = shared(
                        ("tokenizer", self.source), lambda: load_fast_tokenizer(self.source)
                    )
                except (ModelLoadError, OSError, ValueError) as exc:
                    logger.warning(
                        "%s: no tokenizer for model=%r here (%s): texts are sent whole, so the "
                        "server truncates over-long ones its own way (or refuses them)",
                        self.base_url,
                        self.model,
                        " ".join(str(exc).split())[:200],
                    )
            return self._tokenizer

    async def _atokenizer(self) -> Any | None:
        if self._tokenizer_tried:
            return self._tokenizer
        return await asyncio.to_thread(self.tokenizer)  # one-off file reads, off the loop

    def _batches(self, members: list[int]) -> list[list[int]]:
        """``members`` in requests of at most ``batch_size``, in order."""
        size = self.batch_size
        return [members[i : i + size] for i in range(0, len(members), size)]

    def close(self) -> None:
        """Close the connections of the synchronous client."""
        self.transport.close()

    async def aclose(self) -> None:
        """Close the connections of the current event loop's async client."""
        await self.transport.aclose()


class RemoteEmbeddingBackend(RemoteBackend):
    """Qwen3-Embedding served over the OpenAI-compatible ``/v1/embeddings`` route.

    Takes texts already formatted by :class:`~qwen3_rag.Embedder` (the query template and
    instruction applied) and returns L2-normalised vectors.

    Args:
        base_url: The server's root URL or its ``/v1`` URL.
        model: The served model name (also where the tokenizer is looked for).
        api_key_env: Environment variable holding the API key.
        timeout: Seconds to wait for one answer.
        max_retries: Retries on 429, 5xx and failed connections.
        batch_size: Most texts per request.
        max_length: Most tokens per text, ``<|endoftext|>`` included.
        source: Where the tokenizer comes from (default: ``model`` as a hub id or folder).
        show_progress: Show a progress bar.

    Example:
        >>> backend = RemoteEmbeddingBackend("http://localhost:8000", "Qwen/Qwen3-Embedding-0.6B")
        >>> backend.urls
        ['http://localhost:8000/v1/embeddings', 'http://localhost:8000/embeddings']
    """

    what = "embedding"
    url_env = EMBED_URL_ENV
    url_flag = "--embed-url"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = EMBED_API_KEY_ENV,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        batch_size: int = 32,
        max_length: int = DEFAULT_MAX_LENGTH,
        source: ModelSource | None = None,
        show_progress: bool = False,
    ) -> None:
        super().__init__(
            base_url,
            model,
            embeddings_urls(base_url),
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            batch_size=batch_size,
            max_length=max_length,
            source=source,
            show_progress=show_progress,
        )
        self._dimensions_accepted: bool | None = None
        self._size: int | None = None

    @classmethod
    def from_options(cls, options: EmbedderOptions) -> RemoteEmbeddingBackend:
        """The backend for an :class:`~qwen3_rag.EmbedderOptions` with a ``base_url``."""
        if options.base_url is None:
            raise ValueError("these options have no base_url: the model runs locally")
        return cls(
            options.base_url,
            options.model,
            api_key_env=options.api_key_env or EMBED_API_KEY_ENV,
            timeout=options.timeout,
            max_retries=options.max_retries,
            batch_size=options.batch_size,
            max_length=options.max_length,
            source=ModelSource(
                options.model, options.revision, options.cache_dir, options.local_files_only
            ),
            show_progress=options.show_progress,
        )

    @property
    def dimensions_accepted(self) -> bool | None:
        """Whether the server took ``dimensions`` (``None`` until one was asked for)."""
        return self._dimensions_accepted

    def size(self) -> int:
        """The served model's full vector size (asks the server once if not known yet)."""
        if self._size is None:
            self._request(["size probe"], None)
        assert self._size is not None
        return self._size

    async def asize(self) -> int:
        """Async :meth:`size`."""
        if self._size is None:
            await self._arequest(["size probe"], None)
        assert self._size is not None
        return self._size

    # -- embedding ----------------------------------------------------------------------

    def embed(self, texts: list[str], dimensions: int | None) -> np.ndarray:
        """Embed formatted texts.

        Args:
            texts: The texts, templates applied.
            dimensions: Matryoshka size, or ``None`` for the full size.

        Returns:
            ``float32`` array ``(len(texts), size)``, rows L2-normalised.

        Raises:
            RemoteError: If the server cannot be reached or refuses the request.
            ValueError: If ``dimensions`` exceeds the served model's size.
        """
        if not texts:
            return np.zeros((0, dimensions or self.size()), dtype=np.float32)
        sent, batches = self._plan(texts, self.tokenizer())
        rows: list[np.ndarray | None] = [None] * len(texts)
        with tqdm(
            total=len(texts), desc="Embedding", unit="text", disable=not self.show_progress
        ) as bar:
            for batch in batches:
                vectors = self._request([sent[i] for i in batch], dimensions)
                for i, v in zip(batch, vectors, strict=True):
                    rows[i] = v
                bar.update(len(batch))
        return np.stack([r for r in rows if r is not None])

    async def aembed(self, texts: list[str], dimensions: int | None) -> np.ndarray:
        """Async :meth:`embed`: requests run on the caller's event loop, a few at a time."""
        if not texts:
            return np.zeros((0, dimensions or await self.asize()), dtype=np.float32)
        sent, batches = self._plan(texts, await self._atokenizer())
        limit = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)

        async def one(batch: list[int]) -> np.ndarray:
            async with limit:
                return await self._arequest([sent[i] for i in batch], dimensions)

        results = await asyncio.gather(*(one(b) for b in batches))
        out = np.empty((len(texts), results[0].shape[1]), dtype=np.float32)
        for batch, vectors in zip(batches, results, strict=True):
            out[batch] = vectors
        return out

    def _plan(self, texts: list[str], tokenizer: Any | None) -> tuple[list[str], list[list[int]]]:
        """The strings to send (cut as the local path cuts) and the requests' batches."""
        texts = repaired(texts)
        batches = self._batches(list(range(len(texts))))
        keep = self.max_length - 1
        long = [i for i, t in enumerate(texts) if _may_exceed(t, keep)]
        if tokenizer is None or not long:
            return texts, batches
        sequences, cut = encode_cut(tokenizer, [texts[i] for i in long], keep)
        if any(cut):
            logger.warning(
                "%d of %d texts exceeded max_length=%d tokens and were truncated",
                sum(cut),
                len(texts),
                self.max_length,
            )
        sent = list(texts)
        for i, ids, c in zip(long, sequences, cut, strict=True):
            if c:
                sent[i] = _text_of(tokenizer, ids)
        return sent, batches

    def _payload(self, texts: list[str], dimensions: int | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if dimensions is not None and self._dimensions_accepted is not False:
            payload["dimensions"] = dimensions
        return payload

    def _rejects_dimensions(self, exc: RemoteError, payload: dict[str, Any]) -> bool:
        said = exc.server_message.lower()
        rejected = (
            "dimensions" in payload
            and exc.status in (400, 422)
            and ("dimension" in said or "matryoshka" in said)
        )
        if rejected:
            self._dimensions_accepted = False
            logger.info(
                "%s does not take dimensions (%s): keeping the first %d values here",
                self.base_url,
                exc.server_message,
                payload["dimensions"],
            )
        return rejected

    def _request(self, texts: list[str], dimensions: int | None) -> np.ndarray:
        payload = self._payload(texts, dimensions)
        try:
            data = self.transport.post(payload)
        except RemoteError as exc:
            if not self._rejects_dimensions(exc, payload):
                raise
            payload = self._payload(texts, dimensions)
            data = self.transport.post(payload)
        return self._vectors(data, payload, len(texts), dimensions)

    async def _arequest(self, texts: list[str], dimensions: int | None) -> np.ndarray:
        payload = self._payload(texts, dimensions)
        try:
            data = await self.transport.apost(payload)
        except RemoteError as exc:
            if not self._rejects_dimensions(exc, payload):
                raise
            payload = self._payload(texts, dimensions)
            data = await self.transport.apost(payload)
        return self._vectors(data, payload, len(texts), dimensions)

    def _vectors(
        self, data: Any, payload: dict[str, Any], n: int, dimensions: int | None
    ) -> np.ndarray:
        """Check the answer, order it by index, keep ``dimensions`` values, L2-normalise."""
        url = self.transport.url
        items = data.get("data") if isinstance(data, dict) else None
        rows: list[Any] = [None] * n
        try:
            assert isinstance(items, list) and len(items) == n
            for position, item in enumerate(items):
                index = item.get("index", position)
                assert isinstance(index, int) and 0 <= index < n and rows[index] is None
                rows[index] = item["embedding"]
            matrix = np.asarray(rows, dtype=np.float64)
            assert matrix.ndim == 2 and matrix.shape[1] > 0 and np.isfinite(matrix).all()
        except (AssertionError, AttributeError, KeyError, TypeError, ValueError):
            raise RemoteError(
                f"the embedding server at {url} answered in an unexpected shape (wanted "
                f'{{"data": [{{"index", "embedding": [floats]}}]}} for {n} inputs): '
                f"{json.dumps(data)[:200]}",
                url=url,
            ) from None
        if "dimensions" in payload:
            self._dimensions_accepted = True
        else:
            self._size = matrix.shape[1]
        if dimensions is not None:
            if matrix.shape[1] < dimensions:
                raise ValueError(
                    f"dimensions={dimensions} is out of range for {self.model!r} at "
                    f"{self.base_url}: its vectors have {matrix.shape[1]} values"
                )
            matrix = matrix[:, :dimensions]
        norms = np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        unit: np.ndarray = (matrix / norms).astype(np.float32)
        return unit


@dataclass
class _RerankRequest:
    query: str
    documents: list[str]
    members: list[int]  # the pairs' indices, in the order of documents


class RemoteRerankBackend(RemoteBackend):
    """Qwen3-Reranker served over the ``/rerank`` route (vLLM, Infinity).

    Args:
        base_url: The server's root URL (``/rerank``) or its ``/v1`` URL (``/v1/rerank``).
        model: The served model name (also where the tokenizer is looked for).
        api_key_env: Environment variable holding the API key.
        timeout: Seconds to wait for one answer.
        max_retries: Retries on 429, 5xx and failed connections.
        batch_size: Most documents per request.
        max_length: Most tokens per pair, template included.
        source: Where the tokenizer comes from (default: ``model`` as a hub id or folder).
        show_progress: Show a progress bar.

    Example:
        >>> backend = RemoteRerankBackend("http://localhost:8001/v1", "Qwen/Qwen3-Reranker-0.6B")
        >>> backend.urls
        ['http://localhost:8001/v1/rerank', 'http://localhost:8001/rerank']
    """

    what = "reranking"
    url_env = RERANK_URL_ENV
    url_flag = "--rerank-url"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = RERANK_API_KEY_ENV,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        batch_size: int = 16,
        max_length: int = DEFAULT_MAX_LENGTH,
        source: ModelSource | None = None,
        show_progress: bool = False,
    ) -> None:
        super().__init__(
            base_url,
            model,
            rerank_urls(base_url),
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            batch_size=batch_size,
            max_length=max_length,
            source=source,
            show_progress=show_progress,
        )
        self._warned_scale = False
        self._fixed: int | None = None  # tokens of the fixed prefix and suffix

    @classmethod
    def from_options(cls, options: RerankerOptions) -> RemoteRerankBackend:
        """The backend for a :class:`~qwen3_rag.RerankerOptions` with a ``base_url``."""
        if options.base_url is None:
            raise ValueError("these options have no base_url: the model runs locally")
        return cls(
            options.base_url,
            options.model,
            api_key_env=options.api_key_env or RERANK_API_KEY_ENV,
            timeout=options.timeout,
            max_retries=options.max_retries,
            batch_size=options.batch_size,
            max_length=options.max_length,
            source=ModelSource(
                options.model, options.revision, options.cache_dir, options.local_files_only
            ),
            show_progress=options.show_progress,
        )

    def score(self, instruction: str, pairs: list[tuple[str, str]]) -> list[float]:
        """P(yes) of each ``(query, document)`` pair, in input order.

        Raises:
            RemoteError: If the server cannot be reached, refuses a request or answers in an
                unexpected shape.
        """
        if not pairs:
            return []
        scores = [0.0] * len(pairs)
        requests = self._plan(instruction, pairs, self.tokenizer())
        with tqdm(
            total=len(pairs), desc="Reranking", unit="pair", disable=not self.show_progress
        ) as bar:
            for request in requests:
                data = self.transport.post(self._payload(request))
                for i, s in zip(request.members, self._scores(data, request), strict=True):
                    scores[i] = s
                bar.update(len(request.members))
        return scores

    async def ascore(self, instruction: str, pairs: list[tuple[str, str]]) -> list[float]:
        """Async :meth:`score`: requests run on the caller's event loop, a few at a time."""
        if not pairs:
            return []
        requests = self._plan(instruction, pairs, await self._atokenizer())
        limit = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)

        async def one(request: _RerankRequest) -> list[float]:
            async with limit:
                return self._scores(await self.transport.apost(self._payload(request)), request)

        scores = [0.0] * len(pairs)
        for request, got in zip(
            requests, await asyncio.gather(*(one(r) for r in requests)), strict=True
        ):
            for i, s in zip(request.members, got, strict=True):
                scores[i] = s
        return scores

    def _plan(
        self, instruction: str, pairs: list[tuple[str, str]], tokenizer: Any | None
    ) -> list[_RerankRequest]:
        """The requests: pairs grouped by the query string sent, cut as the local path cuts.

        Without a tokenizer the strings are the recipe's, whole. With one, each body
        (instruction, query, document) is cut to the same token budget as locally; a cut
        inside the document shortens the document string, a cut inside the query half
        (a query longer than the budget) moves the cut body into the query string.
        """
        pairs = list(
            zip(repaired([q for q, _ in pairs]), repaired([d for _, d in pairs]), strict=True)
        )
        queries = [RERANK_PREFIX + format_rerank_query(instruction, q) for q, _ in pairs]
        documents = [format_rerank_document(d) + RERANK_SUFFIX for _, d in pairs]
        if tokenizer is not None:
            self._cut(instruction, pairs, tokenizer, queries, documents)
        groups: dict[str, list[int]] = {}
        for i, query in enumerate(queries):
            groups.setdefault(query, []).append(i)
        return [
            _RerankRequest(query, [documents[i] for i in batch], batch)
            for query, members in groups.items()
            for batch in self._batches(members)
        ]

    def _cut(
        self,
        instruction: str,
        pairs: list[tuple[str, str]],
        tokenizer: Any,
        queries: list[str],
        documents: list[str],
    ) -> None:
        """Cut over-long pairs in place, to the tokens the local path keeps."""
        if self._fixed is None:
            self._fixed = sum(
                len(tokenizer.encode(t, add_special_tokens=False).ids)
                for t in (RERANK_PREFIX, RERANK_SUFFIX)
            )
        budget = rerank_budget(self.max_length, self._fixed)
        bodies = {i: format_rerank_body(instruction, q, d) for i, (q, d) in enumerate(pairs)}
        long = [i for i, body in bodies.items() if _may_exceed(body, budget)]
        if not long:
            return
        sequences, cut = encode_cut(tokenizer, [bodies[i] for i in long], budget)
        if any(cut):
            logger.warning(
                "%d of %d query-document pairs exceeded max_length=%d tokens and were truncated",
                sum(cut),
                len(pairs),
                self.max_length,
            )
        for i, ids, c in zip(long, sequences, cut, strict=True):
            if not c:
                continue
            half = format_rerank_query(instruction, pairs[i][0])
            head = tokenizer.encode(half, add_special_tokens=False).ids
            if len(head) <= len(ids) and ids[: len(head)] == head:
                documents[i] = _text_of(tokenizer, ids[len(head) :]) + RERANK_SUFFIX
            else:
                queries[i] = RERANK_PREFIX + _text_of(tokenizer, ids)
                documents[i] = RERANK_SUFFIX

    def _payload(self, request: _RerankRequest) -> dict[str, Any]:
        return {
            "model": self.model,
            "query": request.query,
            "documents": request.documents,
            "return_documents": False,
        }

    def _scores(self, data: Any, request: _RerankRequest) -> list[float]:
        """Scores in the request's document order, from either answer shape.

        vLLM and Infinity answer ``{"results": [{"index", "relevance_score"}]}``; TEI answers
        ``[{"index", "score"}]``.
        """
        url = self.transport.url
        n = len(request.documents)
        results = data.get("results") if isinstance(data, dict) else data
        scores: list[float | None] = [None] * n
        try:
            assert isinstance(results, list) and len(results) == n
            for item in results:
                index = item["index"]
                value = item["relevance_score"] if "relevance_score" in item else item["score"]
                assert isinstance(index, int) and 0 <= index < n and scores[index] is None
                scores[index] = float(value)
                assert math.isfinite(scores[index])  # type: ignore[arg-type]
        except (AssertionError, AttributeError, KeyError, TypeError, ValueError):
            raise RemoteError(
                f"the reranking server at {url} answered in an unexpected shape (wanted "
                f'{{"results": [{{"index", "relevance_score"}}]}} for {n} documents): '
                f"{json.dumps(data)[:200]}",
                url=url,
            ) from None
        out = [float(s) for s in scores if s is not None]
        if not self._warned_scale and any(not 0.0 <= s <= 1.0 for s in out):
            self._warned_scale = True
            logger.warning(
                "%s returns scores outside [0, 1], so they are not the model's P(yes): serve "
                "Qwen3-Reranker as the README's model-server section shows (vLLM with "
                "--hf_overrides ...)",
                self.base_url,
            )
        return out


# -- check-server ----------------------------------------------------------------------------

#: Queries of the probe set (the published examples, a non-Latin one, an empty one).
PROBE_QUERIES = (
    "What is the capital of China?",
    "Explain gravity",
    "北京是哪个国家的首都？",  # noqa: RUF001
    "",
)
#: Documents of the probe set; the last is long enough to be truncated at the probe's
#: ``max_length``.
PROBE_DOCUMENTS = (
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other. It gives weight to "
    "physical objects and is responsible for the movement of planets around the sun.",
    "def reverse(xs):\n    return xs[::-1]\n",
    "Die Hauptstadt von Deutschland ist Berlin, eine Stadt mit vielen Museen. " * 60,
)
#: Instructions of the probe set: the default, a symmetric preset, a custom sentence.
PROBE_INSTRUCTIONS = (
    None,
    "semantic_similarity",
    "Given a question, find the passage that answers it",
)
#: Default ``max_length`` of the probe: the long document is cut, on both sides.
PROBE_MAX_LENGTH = 256
#: Default tolerances. A server computing in bfloat16 stays well inside them on the real
#: models (cosine >= 0.999, scores within ~0.01 of the float32 reference); recipe mistakes
#: (a missing instruction or <|endoftext|>, no reranker prefix/suffix) fall far outside.
MIN_COSINE = 0.99
MAX_SCORE_DIFF = 0.05


@dataclass
class ProbeResult:
    """One comparison of :func:`check_server`.

    Attributes:
        kind: ``"embedding"`` or ``"rerank"``.
        name: What was compared (texts, instruction, dimensions).
        min_cosine: Smallest cosine between local and served vectors (embedding).
        max_abs_diff: Largest absolute difference of a vector value or a score.
        ok: Whether it is within the tolerances.
    """

    kind: str
    name: str
    max_abs_diff: float
    min_cosine: float | None = None
    ok: bool = True


@dataclass
class ServerReport:
    """What :func:`check_server` found; ``ok`` is the verdict.

    Attributes:
        embed_url: The embedding server checked, or ``None``.
        rerank_url: The reranking server checked, or ``None``.
        embedding_model: The embedding model (local weights and served name).
        reranker_model: The reranker model.
        max_abs_vector_diff: Largest absolute difference of a vector value.
        min_cosine: Smallest cosine between a local and a served vector.
        max_abs_score_diff: Largest absolute difference of a reranker score.
        dimensions_accepted: Whether the server took ``dimensions`` (``False``: the client
            truncates; ``None``: not checked).
        min_cosine_allowed: The cosine tolerance.
        max_score_diff_allowed: The score tolerance.
        probes: Every comparison.
        ok: Whether everything is within the tolerances.
    """

    embed_url: str | None
    rerank_url: str | None
    embedding_model: str | None
    reranker_model: str | None
    max_abs_vector_diff: float | None = None
    min_cosine: float | None = None
    max_abs_score_diff: float | None = None
    dimensions_accepted: bool | None = None
    min_cosine_allowed: float = MIN_COSINE
    max_score_diff_allowed: float = MAX_SCORE_DIFF
    probes: list[ProbeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every comparison is within the tolerances."""
        return all(p.ok for p in self.probes)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-serialisable data."""
        return {**asdict(self), "ok": self.ok}

    def table(self) -> str:
        """The report as a text table, worst differences first within each kind."""
        lines = []
        if self.embed_url:
            accepted = {None: "not asked", True: "yes", False: "no (truncated here)"}
            lines.append(
                f"embeddings  {self.embed_url}  model {self.embedding_model}  dimensions "
                f"accepted: {accepted[self.dimensions_accepted]}"
            )
        if self.rerank_url:
            lines.append(f"reranking   {self.rerank_url}  model {self.reranker_model}")
        lines.append("")
        lines.append(f"{'kind':<10} {'probe':<54} {'max |diff|':>10} {'min cos':>9}  ok")
        for p in sorted(self.probes, key=lambda p: (p.kind, -p.max_abs_diff)):
            cos = "" if p.min_cosine is None else f"{p.min_cosine:.6f}"
            lines.append(
                f"{p.kind:<10} {p.name[:54]:<54} {p.max_abs_diff:>10.2e} {cos:>9}  "
                f"{'yes' if p.ok else 'NO'}"
            )
        lines.append("")
        summary = []
        if self.max_abs_vector_diff is not None:
            summary.append(
                f"vectors: max |diff| {self.max_abs_vector_diff:.2e}, min cosine "
                f"{self.min_cosine:.6f} (allowed >= {self.min_cosine_allowed})"
            )
        if self.max_abs_score_diff is not None:
            summary.append(
                f"scores: max |diff| {self.max_abs_score_diff:.2e} (allowed <= "
                f"{self.max_score_diff_allowed})"
            )
        lines.append("; ".join(summary))
        lines.append(
            "OK: the server computes the recipe"
            if self.ok
            else "DIFFERENT: the server does not compute the recipe (see the probes marked NO)"
        )
        return "\n".join(lines)


def _mrl_sizes(hidden: int) -> list[int | None]:
    sizes: list[int | None] = [None]
    sizes += [d for d in (32, 128, 512) if d < hidden]
    return sizes


def check_server(
    url: str | None = None,
    *,
    embed_url: str | None = None,
    rerank_url: str | None = None,
    embedding_model: str = "Qwen/Qwen3-Embedding-0.6B",
    reranker_model: str = "Qwen/Qwen3-Reranker-0.6B",
    max_length: int = PROBE_MAX_LENGTH,
    min_cosine: float = MIN_COSINE,
    max_score_diff: float = MAX_SCORE_DIFF,
    device: str | None = None,
    dtype: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    embed_api_key_env: str | None = None,
    rerank_api_key_env: str | None = None,
) -> ServerReport:
    """Embed and rerank a fixed probe set locally and through servers; report the differences.

    The local side loads the model weights here (a local folder or the hub cache); the
    served side sends the same inputs, formatted by the same code. Every query and document
    of the probe is embedded with each probe instruction (the default, a symmetric preset, a
    custom sentence) and each Matryoshka size below the model's, and reranked with each
    instruction; the long document is cut at ``max_length`` on both sides.

    Args:
        url: One server for both models (e.g. a router in front of two engines).
        embed_url: The embedding server (overrides ``url``); ``None`` with no ``url`` skips
            the embedding check.
        rerank_url: The reranking server (overrides ``url``).
        embedding_model: Served name and local weights of the embedding model.
        reranker_model: Served name and local weights of the reranker.
        max_length: ``max_length`` of both sides during the probe.
        min_cosine: Smallest cosine allowed between a local and a served vector.
        max_score_diff: Largest score difference allowed.
        device: Device of the local side.
        dtype: Dtype of the local side (default float32 on CPU: the reference).
        timeout: Seconds per request to the server.
        max_retries: Retries per request.
        embed_api_key_env: Variable holding the embedding server's key (default
            ``QWEN3_RAG_EMBED_API_KEY``).
        rerank_api_key_env: Variable holding the reranking server's key.

    Returns:
        The report (``report.ok``, ``report.table()``, ``report.to_dict()``).

    Raises:
        ValueError: If no server is named.
        RemoteError: If a server cannot be reached or refuses a request.
        ModelLoadError: If the local weights cannot be loaded.

    Example:
        >>> report = check_server("http://localhost:8000")  # doctest: +SKIP
        >>> print(report.table())  # doctest: +SKIP
    """
    with _probe_truncation_not_logged():
        return _check_server(
            url,
            embed_url=embed_url,
            rerank_url=rerank_url,
            embedding_model=embedding_model,
            reranker_model=reranker_model,
            max_length=max_length,
            min_cosine=min_cosine,
            max_score_diff=max_score_diff,
            device=device,
            dtype=dtype,
            timeout=timeout,
            max_retries=max_retries,
            embed_api_key_env=embed_api_key_env,
            rerank_api_key_env=rerank_api_key_env,
        )


class _NoTruncationWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "were truncated" not in record.getMessage()


@contextlib.contextmanager
def _probe_truncation_not_logged() -> Iterator[None]:
    """The probe cuts its long document on purpose: no warning for that."""
    quiet = _NoTruncationWarning()
    loggers = [logging.getLogger(f"qwen3_rag.{m}") for m in ("embedder", "reranker", "remote")]
    for one in loggers:
        one.addFilter(quiet)
    try:
        yield
    finally:
        for one in loggers:
            one.removeFilter(quiet)


def _check_server(
    url: str | None,
    *,
    embed_url: str | None,
    rerank_url: str | None,
    embedding_model: str,
    reranker_model: str,
    max_length: int,
    min_cosine: float,
    max_score_diff: float,
    device: str | None,
    dtype: str | None,
    timeout: float,
    max_retries: int,
    embed_api_key_env: str | None,
    rerank_api_key_env: str | None,
) -> ServerReport:
    from qwen3_rag.embedder import Embedder
    from qwen3_rag.reranker import Reranker

    embed_url = embed_url or url
    rerank_url = rerank_url or url
    if embed_url is None and rerank_url is None:
        raise ValueError("check_server needs a server: pass url, embed_url or rerank_url")
    report = ServerReport(
        embed_url=check_base_url(embed_url, "embed_url") if embed_url else None,
        rerank_url=check_base_url(rerank_url, "rerank_url") if rerank_url else None,
        embedding_model=embedding_model if embed_url else None,
        reranker_model=reranker_model if rerank_url else None,
        min_cosine_allowed=min_cosine,
        max_score_diff_allowed=max_score_diff,
    )
    common: dict[str, Any] = {"max_length": max_length, "timeout": timeout}
    local_args: dict[str, Any] = {"device": device, "dtype": dtype, "max_length": max_length}
    if report.embed_url:
        probe = Embedder(
            embedding_model, base_url=report.embed_url, api_key_env=embed_api_key_env, **common
        )
        sizes = _mrl_sizes(probe.hidden_size)  # the served size: asks the server first
        for instruction in PROBE_INSTRUCTIONS:
            for dims in sizes:
                served = Embedder(
                    embedding_model,
                    base_url=report.embed_url,
                    api_key_env=embed_api_key_env,
                    max_retries=max_retries,
                    dimensions=dims,
                    instruction=instruction,
                    **common,
                )
                mine = Embedder(
                    embedding_model, dimensions=dims, instruction=instruction, **local_args
                )
                for side in ("queries", "documents"):
                    texts = list(PROBE_QUERIES if side == "queries" else PROBE_DOCUMENTS)
                    # The server first: a dead server fails before local weights load.
                    if side == "queries":
                        b, a = served.embed_queries(texts), mine.embed_queries(texts)
                    else:
                        b, a = served.embed_documents(texts), mine.embed_documents(texts)
                    diff = float(np.abs(a - b).max())
                    cos = float((a * b).sum(axis=1).min())
                    report.probes.append(
                        ProbeResult(
                            "embedding",
                            f"{side}, instruction={instruction or 'default'}, "
                            f"dimensions={dims or 'full'}",
                            diff,
                            cos,
                            cos >= min_cosine,
                        )
                    )
                if dims is not None and served.remote is not None:
                    accepted = served.remote.dimensions_accepted
                    if accepted is not None:
                        report.dimensions_accepted = accepted
                served.close()
        embedding = [p for p in report.probes if p.kind == "embedding"]
        report.max_abs_vector_diff = max(p.max_abs_diff for p in embedding)
        report.min_cosine = min(p.min_cosine or 0.0 for p in embedding)
    if report.rerank_url:
        for instruction in PROBE_INSTRUCTIONS:
            served_rr = Reranker(
                reranker_model,
                base_url=report.rerank_url,
                api_key_env=rerank_api_key_env,
                max_retries=max_retries,
                instruction=instruction,
                **common,
            )
            mine_rr = Reranker(reranker_model, instruction=instruction, **local_args)
            pairs = [(q, d) for q in PROBE_QUERIES for d in PROBE_DOCUMENTS]
            b_scores = np.asarray(served_rr.score_pairs(pairs))
            a_scores = np.asarray(mine_rr.score_pairs(pairs))
            diff = float(np.abs(a_scores - b_scores).max())
            report.probes.append(
                ProbeResult(
                    "rerank",
                    f"{len(pairs)} pairs, instruction={instruction or 'default'}",
                    diff,
                    None,
                    diff <= max_score_diff,
                )
            )
            served_rr.close()
        report.max_abs_score_diff = max(p.max_abs_diff for p in report.probes if p.kind == "rerank")
    return report
