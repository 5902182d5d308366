"""The API's request limits: how long a request body may take, and what happens to a body
the API did not read.

:class:`BodyLimits` is the outermost ASGI layer of the API:

- the whole body must arrive within ``body_timeout`` of the request head; past it the
  handler reading it gets 408 and the connection is closed;
- an answer given before the body was read (401, 404, 413, ...) first drains what the client
  is still sending (at most ``DRAIN_BYTES``, for at most ``DRAIN_SECONDS``, within the body
  deadline). Drained, the connection stays usable; not drained, the answer says
  ``Connection: close``. Without this, the server closed a keep-alive connection after such
  an answer without saying so, and a client that reused it for its next request got
  "Server disconnected without sending a response".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api._http import ApiError

__all__ = ["DRAIN_BYTES", "DRAIN_SECONDS", "ApiLimits", "BodyLimits"]

DRAIN_BYTES = 1_048_576
DRAIN_SECONDS = 2.0


@dataclass(frozen=True)
class ApiLimits:
    """The API's connection limits (``api:`` in the YAML file): seconds, and a count."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 30.0
    max_connections: int = 1000


def _declares_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False


class BodyLimits:
    """See the module's docstring; ``body_timeout`` is read per request (reloads)."""

    def __init__(self, app: ASGIApp, body_timeout: Callable[[], float]) -> None:
        self.app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        timeout = self.body_timeout()
        deadline = loop.time() + timeout
        pending = _declares_body(scope)

        def note(message: Message) -> Message:
            nonlocal pending
            if message["type"] != "http.request" or not message.get("more_body", False):
                pending = False
            return message

        async def bounded_receive() -> Message:
            if not pending:
                return await receive()
            try:
                return note(await asyncio.wait_for(receive(), deadline - loop.time()))
            except TimeoutError:
                raise ApiError(408, "timeout", f"the request body did not arrive within "
                                               f"{timeout:g} s (api.body_timeout)",
                               headers={"Connection": "close"}) from None

        async def drain() -> None:
            until = min(loop.time() + DRAIN_SECONDS, deadline)
            drained = 0
            while pending and drained <= DRAIN_BYTES and loop.time() < until:
                try:
                    message = note(await asyncio.wait_for(receive(), until - loop.time()))
                except TimeoutError:
                    return
                drained += len(message.get("body", b""))

        async def bounded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and pending:
                await drain()
                if pending:
                    headers = [(k, v) for k, v in message.get("headers", ())
                               if k.lower() != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, bounded_receive, bounded_send)
