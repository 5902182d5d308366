"""An async refresh shared by concurrent callers and reused for a short while.

``/metrics`` asks the Restate admin API (one SQL query) for the waiting-subscriptions
figure; scraped by several Prometheus servers, or hammered, that was one query per scrape.
Wrapped in :class:`SingleFlight`, the query runs at most once per ``ttl`` seconds, and the
scrapes that arrive while it runs wait for that one run instead of starting their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["SingleFlight"]


class SingleFlight:
    """Call ``refresh`` at most once per ``ttl`` seconds; concurrent callers share a run.
    A run that failed counts too (Restate down is not asked again at once)."""

    def __init__(self, refresh: Callable[[], Awaitable[None]], ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._refresh = refresh
        self._ttl = ttl
        self._clock = clock
        self._done_at: float | None = None
        self._running: asyncio.Future[None] | None = None

    async def __call__(self) -> None:
        if self._done_at is not None and self._clock() - self._done_at < self._ttl:
            return
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
        # shielded: a caller that goes away does not cancel the run the others wait for
        await asyncio.shield(self._running)

    async def _run(self) -> None:
        try:
            await self._refresh()
        finally:
            self._done_at = self._clock()
            self._running = None
