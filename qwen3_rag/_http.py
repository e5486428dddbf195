"""HTTP to a model server: the route, the API key, timeouts and the one retry policy.

:class:`Transport` is what :mod:`qwen3_rag.remote`'s backends send through: it tries the
route's spellings (``/v1/embeddings``, then ``/embeddings`` on a 404, remembered once one
answers), reads the API key from an environment variable at each request, and retries 429,
5xx answers and failed connections with exponential backoff and jitter (``Retry-After``
honoured, capped). The policy is written once, free of I/O (:meth:`Transport._policy`), and
driven by the sync client (``httpx.Client``) and the async one (``httpx.AsyncClient``, one per
event loop) alike. Needs the ``remote`` extra (httpx).

Example:
    >>> t = Transport("http://h:8000", ["http://h:8000/v1/embeddings"], what="embedding",
    ...               api_key_env="KEY", url_hint="base_url", timeout=5.0, max_retries=2)
    >>> 0.0 < t._delay(0) <= BACKOFF_SECONDS and t._delay(0, "3") == 3.0
    True
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qwen3_rag._extras import require
from qwen3_rag.errors import RemoteError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BACKOFF_SECONDS",
    "MAX_BACKOFF_SECONDS",
    "MAX_RETRY_AFTER_SECONDS",
    "RETRY_STATUSES",
    "Transport",
]

logger = logging.getLogger("qwen3_rag.remote")

#: Answers worth retrying: rate limited, or the server failed or is restarting.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: First backoff delay in seconds; it doubles with each retry (with jitter), up to the cap.
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
#: The longest ``Retry-After`` wait honoured, in seconds.
MAX_RETRY_AFTER_SECONDS = 30.0


def _httpx() -> Any:
    return require("httpx", "remote", "base_url= (a model server)")


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


class Transport:
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
        policy = self._policy()
        url, delay = next(policy)
        while True:
            time.sleep(delay)
            try:
                result: Any = client.post(url, json=payload, headers=self._headers())
            except httpx.TransportError as exc:
                result = exc
            try:
                url, delay = policy.send(result)
            except StopIteration as done:
                return done.value

    async def apost(self, payload: dict[str, Any]) -> Any:
        """Async :meth:`post`, on the running event loop (the same policy)."""
        httpx = _httpx()
        client = self._async_client()
        policy = self._policy()
        url, delay = next(policy)
        while True:
            if delay:
                await asyncio.sleep(delay)
            try:
                result: Any = await client.post(url, json=payload, headers=self._headers())
            except httpx.TransportError as exc:
                result = exc
            try:
                url, delay = policy.send(result)
            except StopIteration as done:
                return done.value

    def _policy(self) -> Generator[tuple[str, float], Any, Any]:
        """The one retry policy of :meth:`post` and :meth:`apost`, free of I/O.

        Yields ``(url, seconds to wait first)`` for each attempt and is sent its outcome (the
        response, or the transport error); returns the decoded answer, moves on to the
        route's next spelling on a 404, or raises :class:`RemoteError`.
        """
        for url in self._candidates():
            attempt, delay = 0, 0.0
            while True:
                result = yield url, delay
                outcome = (
                    self._failed(url, result, attempt)
                    if isinstance(result, Exception)
                    else self._answered(url, result, attempt)
                )
                if outcome is None:
                    break  # 404: try the next spelling of the route
                if isinstance(outcome, _Answer):
                    return outcome.data
                delay, attempt = outcome.delay, attempt + 1
        raise RemoteError(f"no route of the {self.what} server answered", url=self.base_url)

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
