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
runs once per attempt. The headers it journals: :mod:`gateway.observability._trace_context`;
the machinery of every span (the provider, fixed ids, emitting once):
:mod:`gateway.observability._spans`.
Without a provider (:func:`install`) every helper here returns at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from gateway.observability._spans import (
    NO_SPAN,
    SCOPE,
    HandlerTrace,
    StableIds,
    active_tracer,
    agent_instrumentation,
    content_enabled,
    current,
    emit,
    enabled,
    install,
    journaled,
    now_ns,
    replaying,
    seconds_ns,
    step,
    uninstall,
)
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
    "LINK_HEADER", "NO_SPAN", "SCOPE", "SINCE_HEADER", "TRACEPARENT", "HandlerTrace",
    "StableIds", "active_tracer", "agent_instrumentation", "content_enabled", "current", "emit",
    "enabled", "format_traceparent", "install", "journaled", "notify_context", "notify_headers",
    "now_ns", "parse_traceparent", "replaying", "run_span_context", "stable_span_id",
    "stable_trace_id", "step", "subscribe_headers", "task_traceparent", "uninstall",
]


# --- the handlers' spans -----------------------------------------------------------------


def handler_attributes(handler: str, invocation_id: str, task_id: str) -> dict[str, Any]:
    return {"rpc.system": "restate", "rpc.service": "AsyncNotificationsAgent",
            "rpc.method": handler, "restate.invocation.id": invocation_id,
            "gateway.task.id": task_id}


def start_run(task_id: str, invocation_id: str, headers: Mapping[str, str],
              submitted_at: float, agent: str) -> HandlerTrace | None:
    if not enabled():
        return None
    incoming = parse_traceparent(headers.get(TRACEPARENT))
    own = run_span_context(task_id, incoming)
    attrs = handler_attributes("run", invocation_id, task_id)
    attrs["gen_ai.agent.name"] = agent
    return HandlerTrace("AsyncNotificationsAgent/run", own, incoming, seconds_ns(submitted_at),
                        attrs, root_trace=own.trace_id).enter()


def start_notify(ctx: Any, subscription_id: str, channel: str,
                 headers: Mapping[str, str] | None = None) -> HandlerTrace | None:
    """The span of an ``on_notify`` (``ctx``: its Restate context): a child of the task's
    ``run`` span. ``headers``: its trace context, when not the request's own."""
    if not enabled():
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
        start = seconds_ns(float(since)) if since else now_ns()
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


# --- the steps of on_notify ----------------------------------------------------------------


def waited(since: float | None, settled: bool, outcome: str) -> None:
    """The wait of a subscriber for the task's outcome, emitted once it is known: from
    ``since`` (journaled), else from when the task was submitted (the handler span's start)."""
    handler = current()
    if handler is None or replaying():
        return
    end = now_ns()
    start = end if settled else seconds_ns(since) if since is not None else handler.start_ns
    emit("wait for result", handler.context, min(start, end), end,
         attributes={"restate.promise.name": "result", "gateway.task.outcome": outcome})


def fallback(from_channel: str, to_channel: str, step: int) -> None:
    handler = current()
    if handler is None or replaying():
        return
    start = now_ns()
    emit("fallback", handler.context, start, start, attributes={
        "gateway.fallback.from": from_channel, "gateway.fallback.to": to_channel,
        "gateway.fallback.step": step})


def render(channel: str, kind: str) -> Any:
    if not enabled():
        return NO_SPAN
    return step("render", {"gateway.channel": channel, "gateway.message.kind": kind})


def delivery(parent: HandlerTrace | None, channel: str, attempt: int, message_id: str) -> Any:
    """The span of one delivery attempt (inside its journaled step)."""
    if not enabled() or parent is None:
        return NO_SPAN
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
        if error and content_enabled():
            span.set_attribute("gateway.delivery.error", error)


_PROMISE = {
    "succeeded": ("promise resolved", {"restate.promise.name": "result",
                                       "gateway.task.outcome": "succeeded"}),
    "failed": ("promise rejected", {"restate.promise.name": "result",
                                    "gateway.task.outcome": "failed"}),
}


def promise(outcome: str) -> Any:
    """The span of resolving (``succeeded``) or rejecting (``failed``) the task's promise."""
    if not enabled():
        return NO_SPAN
    name, attributes = _PROMISE[outcome]
    return step(name, attributes)
