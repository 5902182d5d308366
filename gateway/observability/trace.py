"""Spans of a task: the API's requests, the Restate handlers, every delivery attempt.

One trace per task. The API's request span starts it and its W3C ``traceparent`` goes with
the ingress call; ``run`` reads it from its request headers (stable across attempts) and
hands the task's context to every ``on_notify`` it sends. With no ``traceparent`` (a task
started on the ingress directly) the trace id is derived from the task id, so the task is
still one trace. A subscriber added later by another request joins the task's trace and
links to the request that added it.

Replays: a handler is re-executed from its journal after a suspension or a crash. Spans
are therefore emitted at the point where the work happens for the first time, never while
the SDK says it is replaying (``restate.server_context.restate_context_is_replaying``, the
flag ``restate.ext.tracing`` reads); a span whose work outlives one attempt (a handler, the
wait for the result) is emitted once at its end, with its start time taken from journaled
values and a span id derived from the invocation id, so spans written in earlier attempts
name it as their parent. A delivery attempt's span is made inside its journaled step, which
runs once per attempt. The headers it journals: :mod:`gateway.observability._trace_context`.
Without a provider (:func:`install`) every helper here returns at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
)
from opentelemetry.util import types
from restate.server_context import restate_context_is_replaying

from gateway.observability._agent_trace import ReplayAwareProvider
from gateway.observability._trace_context import (
    LINK_HEADER,
    SINCE_HEADER,
    TRACEPARENT,
    format_traceparent,
    notify_context,
    notify_headers,
    parse_traceparent,
    run_span_context,
    stable_span_id,
    stable_trace_id,
    subscribe_headers,
    task_traceparent,
)

__all__ = [
    "LINK_HEADER", "SINCE_HEADER", "TRACEPARENT", "HandlerTrace", "StableIds",
    "content_enabled", "enabled", "format_traceparent", "install", "notify_context",
    "notify_headers", "parse_traceparent", "replaying", "run_span_context", "stable_span_id",
    "stable_trace_id", "subscribe_headers", "task_traceparent", "uninstall",
]

SCOPE = "notification-gateway"

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_content = False
#: the span of the handler running in this task (None: none, or tracing is off)
_handler: ContextVar[HandlerTrace | None] = ContextVar("gateway_handler_trace", default=None)
#: ids the next span must have (see StableIds)
_forced: ContextVar[tuple[int | None, int] | None] = ContextVar("gateway_forced_ids",
                                                                  default=None)


# --- the provider --------------------------------------------------------------------------


class StableIds(IdGenerator):
    """Random ids, except for a span whose ids were fixed by the code starting it."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        forced = _forced.get()
        return forced[1] if forced is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced.get()
        if forced is not None and forced[0] is not None:
            return forced[0]
        return self._random.generate_trace_id()


def install(provider: TracerProvider, *, content: bool = False) -> None:
    """Trace with ``provider`` (made with :class:`StableIds`); ``content``: message bodies,
    targets and error texts may go into attributes."""
    global _tracer, _provider, _content
    _tracer = provider.get_tracer(SCOPE)
    _provider = provider
    _content = content


def uninstall() -> None:
    global _tracer, _provider, _content
    _tracer, _provider, _content = None, None, False


def enabled() -> bool:
    return _tracer is not None


def active_tracer() -> Tracer | None:
    """The gateway's tracer (None: tracing is off)."""
    return _tracer


def content_enabled() -> bool:
    return _content


def replaying() -> bool:
    """Whether the Restate handler running in this task is replaying its journal."""
    return restate_context_is_replaying.get()


def now_ns() -> int:
    return time.time_ns()


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


# --- spans ---------------------------------------------------------------------------------


def _context_of(parent: SpanContext | None) -> otel_context.Context:
    if parent is None:
        return otel_context.Context()
    return trace.set_span_in_context(NonRecordingSpan(parent))


def emit(name: str, parent: SpanContext | None, start_ns: int, end_ns: int | None = None, *,
         attributes: types.Attributes = None, kind: SpanKind = SpanKind.INTERNAL,
         ids: tuple[int | None, int] | None = None, links: Sequence[Link] = (),
         error: str | None = None) -> None:
    """A finished span from ``start_ns`` to ``end_ns`` (default: now)."""
    tracer = _tracer
    if tracer is None:
        return
    token = _forced.set(ids) if ids is not None else None
    try:
        span = tracer.start_span(name, _context_of(parent), kind, attributes, links,
                                 start_time=start_ns, record_exception=False)
    finally:
        if token is not None:
            _forced.reset(token)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", error)
    span.end(end_ns if end_ns is not None else now_ns())


@dataclass
class HandlerTrace:
    """The span of one Restate handler invocation, emitted once when it ends."""

    name: str
    #: the handler span's own context (stable across attempts)
    context: SpanContext
    parent: SpanContext | None
    start_ns: int
    attributes: dict[str, Any]
    links: tuple[Link, ...] = ()
    #: the trace id to force when the handler span is a root
    root_trace: int | None = None
    _token: Any = None
    _outer: Any = None

    def enter(self) -> HandlerTrace:
        """Make this span the current one (for the spans and log lines of the handler)."""
        self._outer = _handler.set(self)
        self._token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(
            self.context)))
        return self

    def start_at(self, at: float) -> None:
        """Start the span at ``at`` (epoch seconds, journaled: the same in every attempt)."""
        self.start_ns = _ns(at)

    def leave(self) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            _handler.reset(self._outer)
            self._token = None

    def finish(self, *, error: str | None = None) -> None:
        """Emit the handler span (unless replaying: it was emitted by the attempt that
        finished it)."""
        self.leave()
        if replaying():
            return
        emit(self.name, self.parent, self.start_ns, attributes=self.attributes,
             kind=SpanKind.SERVER, ids=(self.root_trace if self.parent is None else None,
                                        self.context.span_id),
             links=self.links, error=error)


def handler_attributes(handler: str, invocation_id: str, task_id: str) -> dict[str, Any]:
    return {"rpc.system": "restate", "rpc.service": "AsyncNotificationsAgent",
            "rpc.method": handler, "restate.invocation.id": invocation_id,
            "gateway.task.id": task_id}


def start_run(task_id: str, invocation_id: str, headers: Mapping[str, str],
              submitted_at: float, agent: str) -> HandlerTrace | None:
    if _tracer is None:
        return None
    incoming = parse_traceparent(headers.get(TRACEPARENT))
    own = run_span_context(task_id, incoming)
    attrs = handler_attributes("run", invocation_id, task_id)
    attrs["gen_ai.agent.name"] = agent
    return HandlerTrace("AsyncNotificationsAgent/run", own, incoming, _ns(submitted_at), attrs,
                        root_trace=own.trace_id).enter()


def start_notify(ctx: Any, subscription_id: str, channel: str,
                 headers: Mapping[str, str] | None = None) -> HandlerTrace | None:
    """The span of an ``on_notify`` (``ctx``: its Restate context): a child of the task's
    ``run`` span. ``headers``: its trace context, when not the request's own."""
    if _tracer is None:
        return None
    request = ctx.request()
    task_id = ctx.key()
    headers = request.headers if headers is None else headers
    parent = parse_traceparent(headers.get(TRACEPARENT)) or run_span_context(task_id, None)
    own = notify_context(task_id, request.id, headers)
    links: tuple[Link, ...] = ()
    link = parse_traceparent(headers.get(LINK_HEADER))
    if link is not None:
        links = (Link(link, {"gateway.link": "subscribed by"}),)
    links += restate_links(request.attempt_headers, own)
    since = headers.get(SINCE_HEADER)
    try:
        start = _ns(float(since)) if since else now_ns()
    except ValueError:
        start = now_ns()
    attrs = handler_attributes("on_notify", request.id, task_id)
    attrs["gateway.subscription.id"] = subscription_id
    attrs["gateway.channel"] = channel
    return HandlerTrace("AsyncNotificationsAgent/on_notify", own, parent, start, attrs,
                        links).enter()


def restate_links(attempt_headers: Mapping[str, str], own: SpanContext) -> tuple[Link, ...]:
    """A link to restate-server's span of this attempt when it is in another trace (a one-way
    send starts one): from the task's trace an operator reaches Restate's side of it."""
    restate = parse_traceparent({k.lower(): v for k, v in attempt_headers.items()}.get(
        TRACEPARENT))
    if restate is None or restate.trace_id == own.trace_id:
        return ()
    return (Link(restate, {"gateway.link": "restate invocation"}),)


def finish_notify(span: HandlerTrace | None, receipt: Mapping[str, Any]) -> None:
    if span is None:
        return
    state = str(receipt.get("state"))
    span.attributes["gateway.delivery.state"] = state
    span.attributes["gateway.delivery.attempts"] = int(receipt.get("attempts") or 0)
    if receipt.get("channel_used"):
        span.attributes["gateway.delivery.channel_used"] = str(receipt["channel_used"])
    span.finish(error="delivery_failed" if state == "failed" else None)


def current() -> HandlerTrace | None:
    return _handler.get()


@contextmanager
def _live(name: str, attributes: types.Attributes, kind: SpanKind) -> Iterator[Span]:
    handler = _handler.get()
    tracer = _tracer
    if tracer is None or handler is None or replaying():
        yield INVALID_SPAN
        return
    with tracer.start_as_current_span(name, _context_of(handler.context), kind, attributes,
                                      record_exception=False) as span:
        yield span


def step(name: str, attributes: types.Attributes = None,
         kind: SpanKind = SpanKind.INTERNAL) -> Any:
    """A span around handler code that runs again on a replay (not emitted then); a no-op
    context manager without tracing."""
    if _tracer is None:
        return _NULL
    return _live(name, attributes, kind)


class _Null:
    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_NULL = _Null()
#: the context manager the helpers return without tracing (its span is INVALID_SPAN)
NO_SPAN = _NULL


def journaled(name: str, parent: HandlerTrace | None, attributes: types.Attributes = None,
              kind: SpanKind = SpanKind.INTERNAL) -> Any:
    """A span inside a journaled step function (it runs once: no replay check)."""
    tracer = _tracer
    if tracer is None or parent is None:
        return _NULL
    return tracer.start_as_current_span(name, _context_of(parent.context), kind, attributes,
                                        record_exception=False)


# --- the steps of on_notify ----------------------------------------------------------------


def waited(since: float | None, settled: bool, outcome: str) -> None:
    """The wait of a subscriber for the task's outcome, emitted once it is known: from
    ``since`` (journaled), else from when the task was submitted (the handler span's start)."""
    handler = _handler.get()
    if handler is None or replaying():
        return
    end = now_ns()
    start = end if settled else _ns(since) if since is not None else handler.start_ns
    emit("wait for result", handler.context, min(start, end), end,
         attributes={"restate.promise.name": "result", "gateway.task.outcome": outcome})


def fallback(from_channel: str, to_channel: str, step: int) -> None:
    handler = _handler.get()
    if handler is None or replaying():
        return
    start = now_ns()
    emit("fallback", handler.context, start, start, attributes={
        "gateway.fallback.from": from_channel, "gateway.fallback.to": to_channel,
        "gateway.fallback.step": step})


def render(channel: str, kind: str) -> Any:
    if _tracer is None:
        return _NULL
    return step("render", {"gateway.channel": channel, "gateway.message.kind": kind})


def delivery(parent: HandlerTrace | None, channel: str, attempt: int, message_id: str) -> Any:
    """The span of one delivery attempt (inside its journaled step)."""
    if _tracer is None or parent is None:
        return _NULL
    return journaled(f"deliver {channel}", parent, {
        "gateway.channel": channel, "gateway.delivery.attempt": attempt,
        "messaging.message.id": message_id}, SpanKind.CLIENT)


def attempted(span: Span, outcome: str, status: int | None, error: str | None) -> None:
    if not span.is_recording():
        return
    span.set_attribute("gateway.delivery.outcome", outcome)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if outcome != "delivered":
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", outcome)
        if error and _content:
            span.set_attribute("gateway.delivery.error", error)


_PROMISE = {
    "succeeded": ("promise resolved", {"restate.promise.name": "result",
                                       "gateway.task.outcome": "succeeded"}),
    "failed": ("promise rejected", {"restate.promise.name": "result",
                                    "gateway.task.outcome": "failed"}),
}


def promise(outcome: str) -> Any:
    """The span of resolving (``succeeded``) or rejecting (``failed``) the task's promise."""
    if _tracer is None:
        return _NULL
    name, attributes = _PROMISE[outcome]
    return step(name, attributes)


# --- the agent's own spans (pydantic-ai) ---------------------------------------------------


def _handler_context() -> otel_context.Context | None:
    handler = _handler.get()
    return _context_of(handler.context) if handler is not None else None


def agent_instrumentation() -> Any:
    """pydantic-ai's ``InstrumentationSettings`` for an agent built now (None: tracing is
    off): its spans for the run and each model call, content only if enabled."""
    if _provider is None:
        return None
    from pydantic_ai.models.instrumented import InstrumentationSettings

    return InstrumentationSettings(
        tracer_provider=ReplayAwareProvider(_provider, _handler_context, replaying),
        include_content=_content, include_binary_content=_content,
        include_model_request_parameters=_content)
