"""Serve the gateway in a thread of the test process (its own event loop), on a free loopback
port: the Restate endpoint registered with a test's restate-server (:func:`running_endpoint`),
the HTTP API in front of one (:func:`running_api`), or any ASGI app (:class:`ServiceThread`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from gateway.api import ApiSettings, RestateLink, create_api
from gateway.durable import Runtime, create_app
from gateway.local import LocalEngine, free_port, register_deployment
from gateway.local.endpoint import serve_endpoint

__all__ = [
    "ServiceThread", "listening", "register", "running_api", "running_endpoint", "wait_listening",
]

#: how an app is served: ``serve(app, host, port, shutdown)`` until ``shutdown`` is set
Serve = Callable[[Any, str, int, asyncio.Event], Awaitable[None]]


class ServiceThread:
    """``app`` served by ``serve`` (the endpoint's server unless told) in a thread with its own
    event loop; ``cleanup`` runs on that loop after the server stopped."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None,
                 cleanup: Callable[[], Awaitable[None]] | None = None,
                 serve: Serve = serve_endpoint) -> None:
        self.app = app
        self.cleanup = cleanup
        self.host = host
        self.port = port or free_port(host)
        self._serve = serve
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
        self._loop.run_until_complete(self._serve(self.app, self.host, self.port, self._stop))
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


def register(engine: LocalEngine, service_url: str) -> None:
    """Register the gateway endpoint at ``service_url`` with ``engine`` (again, if it was)."""
    register_deployment(engine.admin_url, service_url)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host``:``port`` now."""
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def wait_listening(url: str, timeout: float = 15) -> None:
    """Until the API at ``url`` answers ``/healthz`` (its last error after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def running_endpoint(runtime: Runtime, engine: LocalEngine) -> Iterator[str]:
    """The gateway's Restate endpoint with ``runtime`` installed, registered with ``engine``;
    yields its URL; stopped (and the runtime's connection pools closed) at the end."""
    service = ServiceThread(create_app(runtime), cleanup=runtime.aclose).start()
    try:
        register(engine, service.url)
        yield service.url
    finally:
        service.stop()


@contextmanager
def running_api(settings: ApiSettings, runtime: Runtime, engine: LocalEngine) -> Iterator[str]:
    """The HTTP API of ``settings`` in front of ``engine``'s ingress and admin API, listening;
    yields its URL; stopped (its Restate link and channels closed) at the end."""
    link = RestateLink(engine.ingress_url, engine.admin_url)
    app, _ = create_api(settings, runtime, link)

    async def cleanup() -> None:
        await link.aclose()
        await runtime.channels.aclose()

    service = ServiceThread(app, cleanup=cleanup).start()
    try:
        wait_listening(service.url)
        yield service.url
    finally:
        service.stop()
