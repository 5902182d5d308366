"""The API served the way ``gateway up`` serves it (:func:`gateway.api.http_server.serve_api`,
with its limits), in front of the session's Restate; a fixture starting it."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.api import RestateLink, create_api, serve_api
from gateway.api._limits import ApiLimits
from gateway.local import LocalEngine
from tests.api.conftest import load_api
from tests.support.service import ServiceThread

__all__ = ["ApiThread", "serve_limited"]


class ApiThread(ServiceThread):
    """The API served by :func:`serve_api` within ``limits``, in a thread with its own event
    loop, on a free loopback port."""

    def __init__(self, config: Path, engine: LocalEngine, limits: ApiLimits,
                 link: type[RestateLink] = RestateLink) -> None:
        runtime, settings = load_api(config)
        # the default body limit (the session's API has a small one): a 100000-byte body fits
        self.settings = replace(settings, limits=limits, max_body_bytes=1_048_576)
        self.runtime = runtime
        self.link = link(engine.ingress_url, engine.admin_url)
        app, _ = create_api(self.settings, self.runtime, self.link)
        super().__init__(app, cleanup=self._close, serve=self._serve_limited)

    async def _serve_limited(self, app: Any, host: str, port: int,
                             shutdown: asyncio.Event) -> None:
        await serve_api(app, host, port, self.settings.limits, shutdown)

    async def _close(self) -> None:
        await self.link.aclose()
        await self.runtime.channels.aclose()

    def start(self) -> ApiThread:
        super().start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the API did not start listening within 15 s")

    def stop(self) -> None:
        super().stop()
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
