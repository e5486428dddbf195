"""Watch the event loop while async model calls run: it must never be blocked.

A :class:`Ticker` wakes every 10 ms and records the largest gap between two wake-ups. The core
calls are held for :data:`CALL_SECONDS` each (:func:`slow_down`, in whatever thread runs them,
outside the model lock), so that a single call run on the event loop would stall it for longer
than :data:`MAX_GAP` and fail the test, while calls in worker threads leave it free.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

#: How long each core call is held (see :func:`slow_down`).
CALL_SECONDS = 0.6
#: The largest gap allowed between two ticks. It is below :data:`CALL_SECONDS`, so one core call
#: run on the event loop fails the test (the loop cannot tick while the call holds it). It is far
#: above what a free loop shows: a 10 ms sleep, Python's 5 ms GIL switch interval while worker
#: threads run Python code, and thread hand-offs, with room for a busy shared 2-core machine
#: (measured here under a load average of ~10: well under 0.1 s; once 0.49 s, at the end of a
#: full CI run).
MAX_GAP = 0.5
TICK = 0.01


class Ticker:
    """Records the largest gap between the wake-ups of a coroutine that sleeps ``TICK``."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self.ticks = 0
        self._running = True

    async def run(self) -> None:
        last = time.perf_counter()
        while self._running:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            self.ticks += 1
            last = now

    def stop(self) -> None:
        self._running = False


@asynccontextmanager
async def ticking() -> AsyncIterator[Ticker]:
    """A :class:`Ticker` running on the event loop for the duration of the block."""
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0)  # let it start before the calls do
    try:
        yield ticker
    finally:
        ticker.stop()
        await task


def slow_down(monkeypatch: pytest.MonkeyPatch, obj: Any, *names: str) -> None:
    """Make each call of ``obj.<name>`` take at least :data:`CALL_SECONDS` longer.

    The wait happens in the thread that makes the call, before the real method (so before its
    model lock): calls in worker threads wait side by side, a call on the event loop blocks it.
    """
    for name in names:
        real = getattr(obj, name)

        @functools.wraps(real)
        def held(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            time.sleep(CALL_SECONDS)
            return _real(*args, **kwargs)

        monkeypatch.setattr(obj, name, held)
