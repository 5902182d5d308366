"""The API served the way ``gateway up`` serves it (:func:`gateway.api.http_server.serve_api`,
with its limits), in front of the session's Restate; a fixture starting it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.api import RestateLink, create_api, serve_api
from gateway.api._limits import ApiLimits
from gateway.local import LocalEngine, free_port
from tests.api.conftest import load_api

__all__ = ["ApiThread", "serve_limited"]


class ApiThread:
    """The API served by :func:`serve_api` in a thread with its own event loop."""

    def __init__(self, config: Path, engine: LocalEngine, limits: ApiLimits,
                 link: type[RestateLink] = RestateLink) -> None:
        runtime, settings = load_api(config)
        # the default body limit (the session's API has a small one): a 100000-byte body fits
        self.settings = replace(settings, limits=limits, max_body_bytes=1_048_576)
        self.runtime = runtime
        self.link = link(engine.ingress_url, engine.admin_url)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._main, name="api", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        app, _ = create_api(self.settings, self.runtime, self.link)
        self._loop.run_until_complete(serve_api(app, "127.0.0.1", self.port,
                                                self.settings.limits, self._stop))
        self._loop.run_until_complete(self.link.aclose())
        self._loop.run_until_complete(self.runtime.channels.aclose())
        self._loop.close()

    def start(self) -> ApiThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the API did not start listening within 15 s")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "the API did not stop within 15 s"


@pytest.fixture
def serve_limited(gateway: str, restate_server: LocalEngine,
                  api_config_file: Path) -> Iterator[Callable[..., ApiThread]]:
    """Start the API with the given limits (and link class) in front of the session's
    Restate and gateway; stopped at the end of the test."""
    started: list[ApiThread] = []

    def start(limits: ApiLimits, link: type[RestateLink] = RestateLink) -> ApiThread:
        api = ApiThread(api_config_file, restate_server, limits, link).start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()
