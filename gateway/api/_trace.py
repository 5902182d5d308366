"""Spans of the HTTP API: one SERVER span per request (HTTP semantic conventions, made by
``opentelemetry-instrumentation-asgi``), the span that accepts a task, and the W3C
``traceparent`` of the current span on every call to the Restate ingress, which starts the
task's trace in Restate (see :mod:`gateway.observability.trace`).

Only installed when tracing is on (:func:`gateway.observability.trace.enabled`); probes and
``/metrics`` are not traced.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Scope

from gateway.observability import trace as _trace

__all__ = ["accept_task", "http_server_spans", "inject"]

UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


def http_server_spans(app: ASGIApp, routes: Sequence[BaseRoute]) -> ASGIApp:
    """``app`` with a SERVER span per request by ``opentelemetry-instrumentation-asgi`` (the
    caller's ``traceparent`` continued, the stable HTTP semantic conventions), named
    ``{method} {route}`` after the route of ``routes`` the request matches; ``app`` itself when
    tracing is off."""
    tracer = _trace.active_tracer()
    if tracer is None:
        return app
    # the stable HTTP attribute names (http.request.method, http.response.status_code...);
    # read by the instrumentation when its first middleware is made
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

    def span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
        method = str(scope.get("method", "HTTP"))
        for route in routes:
            match, _ = route.matches(scope)
            path = getattr(route, "path", None)
            if match is Match.FULL and path:
                return f"{method} {path}", {"http.route": path}
        return method, {}

    middleware: ASGIApp = OpenTelemetryMiddleware(
        app, excluded_urls=",".join(f"{p}$" for p in UNTRACED), default_span_details=span_details,
        tracer=tracer, exclude_spans=["receive", "send"])
    return middleware


def accept_task(task_id: str, agent: str, subscriptions: int, hook: str | None = None) -> Any:
    """The span around handing a new task to Restate (the ingress call carries it)."""
    tracer = _trace.active_tracer()
    if tracer is None:
        return _trace.NO_SPAN
    attributes: dict[str, Any] = {"gateway.task.id": task_id, "gen_ai.agent.name": agent,
                                  "gateway.subscription.count": subscriptions}
    if hook is not None:
        attributes["gateway.hook.source"] = hook
    return tracer.start_as_current_span("accept task", attributes=attributes,
                                        record_exception=False)


def inject(headers: dict[str, str], task_id: str | None = None, handler: str = "") -> None:
    """Add a ``traceparent`` to ``headers``: the current span's (tracing on, a span current),
    else, for a call about a task, the trace derived from its id (Restate's spans of the call
    then land in the task's trace)."""
    if _trace.active_tracer() is not None:
        sc = trace.get_current_span().get_span_context()
        if sc.is_valid:
            headers[_trace.TRACEPARENT] = _trace.format_traceparent(sc)
            return
    if task_id is not None:
        headers[_trace.TRACEPARENT] = _trace.task_traceparent(task_id, handler)
