"""Serving the public API with its own, bounded connection settings.

The Restate endpoint is served with its server's limits raised (only the Restate server calls
it: ``gateway.local.endpoint``); the API faces the network, so it is served apart, with:

- ``header_timeout``: a connection must send a complete request head this long after it
  connects (or after the first byte of a keep-alive connection's next request);
- ``body_timeout``: the whole request body must arrive this long after its head, else 408
  (:class:`gateway.api._limits.BodyLimits`, the API's outermost ASGI layer);
- ``keep_alive_timeout``: an idle connection between requests is closed after this;
- ``max_connections``: connections past the cap are closed as soon as they are accepted.

hypercorn offers only the keep-alive timeout (and a per-read timeout a slow sender defeats),
so the rest is added here: the header timer and the cap around hypercorn's own per-connection
server (``TCPServer``, whose idle timer is re-armed by hypercorn exactly when a connection
waits for a request head), the body deadline in the ASGI layer. hypercorn serves the API
(granian the Restate endpoint, by default); pinned to 0.18 in pyproject.toml, which these
internals follow.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.utils import wrap_app

from gateway.api._limits import ApiLimits

__all__ = ["serve_api"]

log = logging.getLogger("gateway.api")


class _WatchedReader:
    """The connection's reader, telling its server when bytes arrive and when it ends."""

    def __init__(self, reader: asyncio.StreamReader, data: asyncio.Event,
                 ended: asyncio.Event) -> None:
        self._reader = reader
        self._data = data
        self._ended = ended

    def at_eof(self) -> bool:
        return self._reader.at_eof()

    async def read(self, n: int = -1) -> bytes:
        try:
            data = await self._reader.read(n)
        except BaseException:
            self._ended.set()
            raise
        (self._data if data else self._ended).set()
        return data


class _BoundedConnection(TCPServer):
    """hypercorn's connection server with a header timeout next to its keep-alive timeout.

    hypercorn runs ``_idle_timeout`` while the connection waits for a request head (from the
    connection's start, and again after each response) and cancels it once a head is
    complete; here it closes the connection when no byte came within the keep-alive timeout
    (the header timeout on a new connection), or the head did not complete within the header
    timeout of its first byte, or at once when the client has gone (hypercorn would keep the
    connection, and its place under the cap, until the timeout)."""

    def __init__(self, limits: ApiLimits, *args: Any) -> None:
        super().__init__(*args)
        self._limits = limits
        self._fresh = True
        self._data = asyncio.Event()
        self._ended = asyncio.Event()
        self.reader = _WatchedReader(self.reader, self._data,  # type: ignore[assignment]
                                     self._ended)

    async def _idle_timeout(self) -> None:
        limits = self._limits
        first_byte = limits.header_timeout if self._fresh else limits.keep_alive_timeout
        self._fresh = False
        self._data.clear()
        data = asyncio.ensure_future(self._data.wait())
        stop = {asyncio.ensure_future(self.context.terminated.wait()),
                asyncio.ensure_future(self._ended.wait())}
        try:
            await asyncio.wait({data, *stop}, timeout=first_byte,
                               return_when=asyncio.FIRST_COMPLETED)
            if data.done() and not any(t.done() for t in stop):  # a head has begun
                await asyncio.wait(stop, timeout=limits.header_timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (data, *stop):
                task.cancel()
        await asyncio.shield(self._initiate_server_close())


def _config(host: str, port: int, limits: ApiLimits) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.keep_alive_timeout = limits.keep_alive_timeout
    config.graceful_timeout = 5.0
    config.shutdown_timeout = 5.0
    config.accesslog = None
    config.errorlog = None
    return config


async def serve_api(app: Any, host: str, port: int, limits: ApiLimits,
                    shutdown: asyncio.Event) -> None:
    """Serve the API ``app`` within ``limits`` until ``shutdown`` is set."""
    config = _config(host, port, limits)
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    loop = asyncio.get_running_loop()
    context = WorkerContext(None)
    connections: set[asyncio.Task[Any]] = set()
    refused = 0

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal refused
        if len(connections) >= limits.max_connections:
            refused += 1
            if refused == 1 or refused % 1000 == 0:
                log.warning("API: %d connections open, the cap (api.max_connections); "
                            "closed %d new ones so far", len(connections), refused)
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await _BoundedConnection(limits, wrapped, loop, config, context, {}, reader, writer)
        finally:
            connections.discard(task)

    sockets = config.create_sockets()
    servers = [await asyncio.start_server(connected, backlog=config.backlog, sock=sock)
               for sock in sockets.insecure_sockets]
    try:
        await shutdown.wait()
    finally:
        await context.terminated.set()
        for server in servers:
            server.close()
            await server.wait_closed()
        if connections:
            _, pending = await asyncio.wait(set(connections), timeout=config.graceful_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
