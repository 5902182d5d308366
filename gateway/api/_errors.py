"""How the API answers errors: its own (JSON ``{error, message, fields}``), Starlette's
404/405, Restate's (503 with Retry-After when unreachable, 502 otherwise), a handler's
refusal (422), and the one boundary that turns anything unexpected into a JSON 500."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api._http import ApiError, error_response, json_response
from gateway.api._models import ErrorBody
from gateway.api.restate_link import HandlerRefused, RestateFailed

__all__ = ["EXCEPTION_HANDLERS", "ErrorBoundary"]

log = logging.getLogger("gateway.api")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = {404: f"no such resource {request.url.path!r}",
               405: f"{request.method} is not allowed here"}.get(exc.status_code, exc.detail)
    return error_response(ApiError(exc.status_code, code, message, headers=exc.headers))


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HandlerRefused)
    return error_response(ApiError(422, "invalid_request", str(exc)))


async def _restate_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RestateFailed)
    # the details (Restate's internal URLs, its own messages) go to the log only
    log.error("%s %s: %s", request.method, _printable(request.url.path), exc)
    if not exc.reachable:
        return error_response(ApiError(503, "restate_unavailable", "Restate is not "
                                       "reachable; try again shortly",
                                       headers={"Retry-After": "1"}))
    return error_response(ApiError(502, "restate_error", "Restate answered unexpectedly; "
                                   "it has been logged"))


async def _unexpected(request: Request, exc: Exception) -> Response:
    body = ErrorBody(error="internal", message="unexpected error; it has been logged")
    return json_response(body, 500)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(text: object) -> str:
    """``text`` for a log line: control characters (a newline could forge a line) escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


class ErrorBoundary:
    """The one place an unexpected error is caught: logged (its type and where, never the
    request's headers or body); the client got a JSON 500 from ``_unexpected``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # the single error boundary of the API
            log.error("%s %s failed: %s", scope.get("method"), _printable(scope.get("path")),
                      type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
            if not started:
                await _unexpected_raw(send)


async def _unexpected_raw(send: Send) -> None:
    body = ErrorBody(error="internal", message="unexpected error; it has been logged")
    data = body.model_dump_json().encode()
    await send({"type": "http.response.start", "status": 500,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    ApiError: _api_error, HTTPException: _http_error, HandlerRefused: _refused,
    RestateFailed: _restate_failed, Exception: _unexpected,
}
