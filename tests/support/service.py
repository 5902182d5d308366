"""Run the gateway's Restate endpoint in a thread of the test process (its own event loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.local import free_port
from gateway.local.endpoint import serve_endpoint


class ServiceThread:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None,
                 cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        self.app = app
        self.cleanup = cleanup
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="gateway-service", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        self._ready.set()
        self._loop.run_until_complete(serve_endpoint(self.app, self.host, self.port, self._stop))
        if self.cleanup is not None:
            self._loop.run_until_complete(self.cleanup())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def start(self) -> ServiceThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
