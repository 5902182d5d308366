"""The ASGI server of the gateway's Restate endpoint, chosen by ``GATEWAY_ENDPOINT_SERVER``.

``granian`` (the default) serves the app from its Rust HTTP/1.1 and HTTP/2 stack, embedded
in this process's event loop (the handlers run in it as before), with its HTTP/2 stream limit
and backpressure raised far above what restate-server opens at once: its defaults (200
streams per connection, backlog/workers = 128 requests in flight embedded) are below the 384
invocations the local engine admits, so streams queued behind the limit. On the same machine
and load it costs the bare SDK's process about half of hypercorn's CPU per delivery (the
README's Benchmarks section has the figures).

``hypercorn`` serves it as before, with its stream and keep-alive limits raised
(``gateway.durable.serve_app``): the way back if granian misbehaves somewhere.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from gateway.core import UserInputError
from gateway.durable import serve_app

__all__ = ["ENDPOINT_SERVERS", "ENDPOINT_SERVER_ENV", "endpoint_server", "serve_endpoint"]

ENDPOINT_SERVER_ENV = "GATEWAY_ENDPOINT_SERVER"
ENDPOINT_SERVERS = ("granian", "hypercorn")
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
