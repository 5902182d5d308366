"""The open endpoints: liveness, readiness (Restate answers), the OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.api._door import door_of
from gateway.api._http import json_response
from gateway.api._models import Health, Readiness

__all__ = ["healthz", "openapi", "readyz"]


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    reason = await door_of(request).restate.readiness()
    if reason is not None:
        return json_response(Readiness(status="not_ready", reason=reason), 503)
    return json_response(Readiness(status="ready"))


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)
