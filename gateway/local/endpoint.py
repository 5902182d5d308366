"""The ASGI server of the gateway's Restate endpoint, chosen by ``GATEWAY_ENDPOINT_SERVER``.

``hypercorn`` (the default) serves in this process's event loop with its stream and
keep-alive limits raised (``gateway.durable.serve_app``). ``granian`` serves the same app
from its Rust HTTP stack embedded in this event loop, with its HTTP/2 stream limit and
backpressure raised above what restate-server opens at once (its defaults, 200 streams and
128 requests in flight, are below the 384 invocations the local engine admits, which left
streams queued behind the limit). See the README's Benchmarks section for the figures.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from gateway.core import UserInputError
from gateway.durable import serve_app

__all__ = ["ENDPOINT_SERVERS", "ENDPOINT_SERVER_ENV", "endpoint_server", "serve_endpoint"]

ENDPOINT_SERVER_ENV = "GATEWAY_ENDPOINT_SERVER"
ENDPOINT_SERVERS = ("hypercorn", "granian")
#: streams and requests in flight on one connection: far above restate-server's invocations
UNLIMITED = 1_000_000
#: seconds open invocation streams get to finish on shutdown (as hypercorn's graceful timeout)
GRACEFUL_TIMEOUT = 5


def endpoint_server() -> str:
    """The configured server's name, or ``UserInputError`` naming the allowed ones."""
    name = os.environ.get(ENDPOINT_SERVER_ENV, "").strip().lower() or ENDPOINT_SERVERS[0]
    if name not in ENDPOINT_SERVERS:
        raise UserInputError(f"{ENDPOINT_SERVER_ENV}={name!r}: use one of "
                             f"{', '.join(ENDPOINT_SERVERS)}")
    return name


async def _serve_granian(app: Any, host: str, port: int, shutdown: asyncio.Event) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP2Settings
    from granian.server.embed import Server

    server = Server(app, address=host, port=port, interface=Interfaces.ASGINL,
                    http=HTTPModes.auto, backlog=2048, backpressure=UNLIMITED,
                    http2_settings=HTTP2Settings(max_concurrent_streams=UNLIMITED),
                    websockets=False, log_enabled=False)
    server.workers_kill_timeout = GRACEFUL_TIMEOUT
    serving = asyncio.ensure_future(server.serve())
    stopping = asyncio.ensure_future(shutdown.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        server.stop()  # type: ignore[no-untyped-call]  # granian leaves it unannotated
        await serving


async def serve_endpoint(app: Any, host: str, port: int, shutdown: asyncio.Event) -> None:
    """Serve the Restate endpoint ``app`` until ``shutdown`` is set."""
    if endpoint_server() == "granian":
        await _serve_granian(app, host, port, shutdown)
    else:
        await serve_app(app, host, port, shutdown)
