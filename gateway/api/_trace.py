"""Spans of the HTTP API: one SERVER span per request (HTTP semantic conventions), the span
that accepts a task, and the W3C ``traceparent`` of the current span on every call to the
Restate ingress, which starts the task's trace in Restate (see :mod:`gateway.observability.trace`).

Only installed when tracing is on (:func:`gateway.observability.trace.enabled`); probes and
``/metrics`` are not traced.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability import trace as _trace

__all__ = ["HttpServerSpans", "accept_task", "inject"]

UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
_propagator = TraceContextTextMapPropagator()


class HttpServerSpans:
    """ASGI middleware: a SERVER span per request, continuing the caller's trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _trace.active_tracer()
        if scope["type"] != "http" or tracer is None or scope.get("path") in UNTRACED:
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate")}
        parent = _propagator.extract(carrier) if carrier else otel_context.Context()
        method = str(scope.get("method", "GET"))
        attributes: dict[str, Any] = {"http.request.method": method,
                                      "url.path": str(scope.get("path", "")),
                                      "url.scheme": str(scope.get("scheme", "http"))}
        status: list[int] = []

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with tracer.start_as_current_span(method, parent, SpanKind.SERVER, attributes,
                                          record_exception=False) as span:
            try:
                await self.app(scope, receive, tracked)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", None)
                if path:
                    span.update_name(f"{method} {path}")
                    span.set_attribute("http.route", path)
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                        span.set_attribute("error.type", str(status[0]))


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
