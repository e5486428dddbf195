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

:func:`qwen3_rag.server_check.check_server` embeds and reranks a fixed probe set locally and
through servers and reports the largest differences (the ``qwen3-rag check-server`` command).

Example:
    >>> from qwen3_rag import Embedder
    >>> emb = Embedder("Qwen/Qwen3-Embedding-0.6B", base_url="http://localhost:8000/v1")
    >>> emb.remote.urls
    ['http://localhost:8000/v1/embeddings']
    >>> emb.embed_queries(["What is the capital of China?"])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from qwen3_rag._http import Transport
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
    ModelOptions,
    check_base_url,
)

__all__ = [
    "EMBED_API_KEY_ENV",
    "EMBED_URL_ENV",
    "RERANK_API_KEY_ENV",
    "RERANK_URL_ENV",
    "RemoteBackend",
    "RemoteEmbeddingBackend",
    "RemoteError",
    "RemoteRerankBackend",
]

logger = logging.getLogger(__name__)

#: The environment variable the ``qwen3-rag`` command reads an embedding server's URL from.
EMBED_URL_ENV = "QWEN3_RAG_EMBED_URL"
#: The environment variable the ``qwen3-rag`` command reads a reranking server's URL from.
RERANK_URL_ENV = "QWEN3_RAG_RERANK_URL"

#: Requests one async call keeps in flight at once.
MAX_CONCURRENT_REQUESTS = 4
#: Trailing tokens a truncated text may lose so that its text tokenizes back exactly.
_ROUND_TRIP_SLACK = 8


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


BackendT = TypeVar("BackendT", bound="RemoteBackend")


class RemoteBackend:
    """What the two remote backends share: the transport, the tokenizer, the limits.

    Attributes:
        base_url: The server's URL as given (no trailing slash).
        model: The served model name.
        transport: The route, retries and HTTP clients.
    """

    what = "model"
    url_env = ""
    url_flag = ""
    #: The variable the API key is read from when ``api_key_env`` is not given.
    default_api_key_env = ""
    #: Inputs per request when ``batch_size`` is not given.
    default_batch_size = 16

    @staticmethod
    def routes(base_url: str) -> list[str]:
        """The URLs this kind of backend tries, preferred first."""
        raise NotImplementedError

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        batch_size: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        source: ModelSource | None = None,
        show_progress: bool = False,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.model = model
        self.batch_size = batch_size or self.default_batch_size
        self.max_length = max_length
        self.show_progress = show_progress
        self.source = source if source is not None else ModelSource(model)
        self.transport = Transport(
            self.base_url,
            self.routes(base_url),
            what=self.what,
            api_key_env=api_key_env or self.default_api_key_env,
            url_hint=f"base_url={self.base_url!r} (CLI: {self.url_flag} or ${self.url_env})",
            timeout=timeout,
            max_retries=max_retries,
        )
        self._tokenizer: Any = None
        self._tokenizer_tried = False
        self._tokenizer_lock = threading.Lock()

    @classmethod
    def from_options(cls: type[BackendT], options: ModelOptions) -> BackendT:
        """The backend for options (``EmbedderOptions``, ``RerankerOptions``) with a ``base_url``.

        Raises:
            ValueError: If the options have no ``base_url``.
        """
        if options.base_url is None:
            raise ValueError("these options have no base_url: the model runs locally")
        return cls(
            options.base_url,
            options.model,
            api_key_env=options.api_key_env,
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
    default_api_key_env = EMBED_API_KEY_ENV
    default_batch_size = 32
    routes = staticmethod(embeddings_urls)
    _dimensions_accepted: bool | None = None  # until a request asks for dimensions
    _size: int | None = None  # the served model's full size, once seen

    @property
    def dimensions_accepted(self) -> bool | None:
        """Whether the server took ``dimensions`` (``None`` until one was asked for)."""
        return self._dimensions_accepted

    def size(self) -> int:
        """The served model's full vector size (asks the server once if not known yet)."""
        if self._size is None:
            self._size = self._request(["size probe"], None).shape[1]
        return self._size

    async def asize(self) -> int:
        """Async :meth:`size`."""
        if self._size is None:
            self._size = (await self._arequest(["size probe"], None)).shape[1]
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
        """Check the answer, order it by index, keep ``dimensions`` values, L2-normalise.

        Raises:
            RemoteError: If the answer is not one finite, non-zero vector of one length for
                each input, each index once.
        """
        url = self.transport.url
        wanted = f'{{"data": [{{"index", "embedding": [floats]}}]}} for {n} inputs'
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != n:
            got = f"{len(items)} items" if isinstance(items, list) else "no data list"
            raise _malformed("embedding", url, f"{got}, wanted {wanted}", data)
        rows: list[Any] = [None] * n
        for position, item in enumerate(items):
            if not isinstance(item, dict) or "embedding" not in item:
                raise _malformed("embedding", url, f"item {position} has no embedding", data)
            rows[_index(item.get("index", position), n, rows, url, "embedding", data)] = item[
                "embedding"
            ]
        try:
            matrix = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            raise _malformed(
                "embedding", url, "the embeddings are not lists of numbers of one length", data
            ) from None
        if matrix.ndim != 2 or matrix.shape[1] == 0:
            raise _malformed("embedding", url, f"vectors of shape {matrix.shape}", data)
        _finite("embedding", url, matrix)
        if not np.all(np.linalg.norm(matrix, axis=1) > 0):
            raise RemoteError(
                f"the embedding server at {url} answered an all-zero vector, which has no "
                f"direction: the server's model or dtype is broken (check it with qwen3-rag "
                f"check-server)",
                url=url,
            )
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
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.all(norms > 0):
            raise RemoteError(
                f"the embedding server at {url} answered vectors whose first {dimensions} "
                f"values are all zero: they have no direction",
                url=url,
            )
        unit: np.ndarray = (matrix / norms).astype(np.float32)
        return unit


def _malformed(what: str, url: str | None, problem: str, data: Any) -> RemoteError:
    """The error for an answer of the wrong shape, quoting its start."""
    return RemoteError(
        f"the {what} server at {url} answered in an unexpected shape ({problem}): "
        f"{json.dumps(data, default=str)[:200]}",
        url=url,
    )


def _index(index: Any, n: int, seen: list[Any], url: str | None, what: str, data: Any) -> int:
    """``index`` if it names one of the ``n`` inputs not answered yet, else the error."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise _malformed(what, url, f"index {index!r} is not one of 0..{n - 1}", data)
    if seen[index] is not None:
        raise _malformed(what, url, f"index {index} answered twice (another is missing)", data)
    return index


def _finite(what: str, url: str | None, values: np.ndarray) -> None:
    """Refuse NaN and infinite values, which a float16 server overflowing answers."""
    bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise RemoteError(
            f"the {what} server at {url} answered {bad} NaN or infinite value(s) of "
            f"{np.size(values)}: it computes out of range (float16 overflows on Qwen3: serve "
            f"it in bfloat16 or float32), so its numbers are not used",
            url=url,
        )


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
    default_api_key_env = RERANK_API_KEY_ENV
    default_batch_size = 16
    routes = staticmethod(rerank_urls)
    _warned_scale = False
    _fixed: int | None = None  # tokens of the fixed prefix and suffix, once counted

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
        wanted = f'{{"results": [{{"index", "relevance_score"}}]}} for {n} documents'
        results = data.get("results") if isinstance(data, dict) else data
        if not isinstance(results, list) or len(results) != n:
            got = f"{len(results)} results" if isinstance(results, list) else "no results list"
            raise _malformed("reranking", url, f"{got}, wanted {wanted}", data)
        scores: list[float | None] = [None] * n
        for position, item in enumerate(results):
            if not isinstance(item, dict) or "index" not in item:
                raise _malformed("reranking", url, f"result {position} has no index", data)
            value = item.get("relevance_score", item.get("score"))
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _malformed("reranking", url, f"result {position} has no score", data)
            scores[_index(item["index"], n, scores, url, "reranking", data)] = float(value)
        _finite("reranking", url, np.asarray(scores, dtype=np.float64))
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


def __getattr__(name: str) -> Any:
    """``check_server`` and its probe set, imported from :mod:`qwen3_rag.server_check`.

    That module uses the embedder and the reranker, which use this one: importing it on
    first use keeps the layers one way, and its ``__all__`` is the list of moved names.
    """
    import importlib

    if not name.startswith("_"):
        moved = importlib.import_module("qwen3_rag.server_check")
        if name in moved.__all__:
            return getattr(moved, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
