"""The front door: an authenticated HTTP API in front of Restate's ingress.

::

    POST   /v1/tasks                               submit      start a task (idempotent)
    POST   /v1/tasks/{task_id}/subscriptions       subscribe   add a subscriber, any time
    GET    /v1/tasks/{task_id}                     read        state, result, receipts
    DELETE /v1/tasks/{task_id}/subscriptions/{id}  subscribe   cancel a waiting subscription
    POST   /v1/tasks/{task_id}/subscriptions/{id}/redrive  subscribe  deliver a failed one again
    POST   /v1/hooks/{source}                      (signed)    inbound webhook -> task
    GET    /healthz, /readyz, /openapi.json        (open)

Restate's ingress has no authentication and stays private; this API checks API keys (see
:mod:`gateway.api.auth`) and inbound signatures (:mod:`gateway.config.hooks`), validates every
input strictly, and calls the workflow's handlers through one shared HTTP client.

This module assembles the app; the parts are apart by concern: ``_door`` (settings, shared
checks), ``_tasks`` and ``_inbound`` and ``_probes`` (the endpoints), ``_operations`` (the
table the routes and the OpenAPI document are made from), ``_errors`` (JSON errors and the
error boundary).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from gateway.api._door import ApiSettings, FrontDoor
from gateway.api._errors import EXCEPTION_HANDLERS, ErrorBoundary
from gateway.api._limits import BodyLimits
from gateway.api._openapi import openapi_document
from gateway.api._operations import OPERATIONS as _TASK_OPERATIONS
from gateway.api._probes import openapi
from gateway.api._single_flight import SingleFlight
from gateway.api._trace import http_server_spans
from gateway.api.restate_link import RestateLink
from gateway.console import console_mount
from gateway.console.redrive import REDRIVE_OPERATION
from gateway.durable import Runtime
from gateway.observability import metrics as _metrics

__all__ = ["OPERATIONS", "ApiSettings", "FrontDoor", "create_api"]

#: every operation of the API (the console's bulk redrive joins the task operations)
OPERATIONS = (*_TASK_OPERATIONS, REDRIVE_OPERATION)

#: /metrics asks Restate for the waiting subscriptions at most this often (one query)
METRICS_REFRESH_SECONDS = 5.0


def create_api(settings: ApiSettings, runtime: Runtime | Callable[[], Runtime],
               restate: RestateLink) -> tuple[ASGIApp, FrontDoor]:
    """The API's ASGI app and its state (swap ``door.settings`` to reload). ``runtime`` is
    the process's runtime, or a function returning the current one."""
    get_runtime = runtime if callable(runtime) else (lambda: runtime)
    door = FrontDoor(settings, get_runtime, restate)
    routes: list[BaseRoute] = [op.route() for op in OPERATIONS]
    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    waiting = SingleFlight(restate.refresh_metrics, ttl=METRICS_REFRESH_SECONDS)
    routes.append(Route("/metrics", _metrics.metrics_endpoint(waiting), methods=["GET"]))
    routes.append(console_mount(door))  # the delivery console at /console
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    app.state.door = door
    app.state.openapi = openapi_document(
        OPERATIONS, title="notification-gateway", version="1",
        description="Start agent tasks, subscribe to their outcome on any channel, follow "
                    "them. Errors are JSON: {error, message, fields}.",
    )
    boundary = ErrorBoundary(app)
    traced = http_server_spans(boundary, app.routes)
    return BodyLimits(traced, lambda: door.settings.limits.body_timeout), door
