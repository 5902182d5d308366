"""The W3C ``traceparent`` of a task and its stable ids: pure functions of the request's
headers and the task id, so every attempt of a handler computes the same.

Headers that go into the journal (the ``traceparent`` of every send of ``on_notify`` and of
the calls a handler makes) depend only on the request's headers and the task id, never on
whether this process traces: a replay under another configuration sends the same. Headers
are part of what a replay compares, so a handler that may wait for hours (``on_notify``)
sends its receipts without: restate-server 1.7 gives a one-way send a trace of its own,
linked to the sender, whatever it carries, and the receipts make no spans of their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from opentelemetry.trace import SpanContext, TraceFlags

__all__ = [
    "LINK_HEADER",
    "SINCE_HEADER",
    "TRACEPARENT",
    "format_traceparent",
    "notify_context",
    "notify_headers",
    "parse_traceparent",
    "run_span_context",
    "stable_span_id",
    "stable_trace_id",
    "subscribe_headers",
    "task_traceparent",
]

TRACEPARENT = "traceparent"
#: on a send of ``on_notify``: when the subscriber started waiting (the task's submission)
SINCE_HEADER = "x-gateway-since"
#: on a send of ``on_notify`` by ``subscribe``: the request that added the subscriber
LINK_HEADER = "x-gateway-link"


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The span context of a W3C ``traceparent`` header (None: absent or malformed)."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if len(parts[1]) != 32 or len(parts[2]) != 16 or not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))


def format_traceparent(sc: SpanContext) -> str:
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags) & 1:02x}"


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def stable_trace_id(task_id: str) -> int:
    return int.from_bytes(_digest("trace", task_id)[:16], "big") or 1


def stable_span_id(*parts: str) -> int:
    return int.from_bytes(_digest("span", *parts)[:8], "big") or 1


def run_span_context(task_id: str, incoming: SpanContext | None) -> SpanContext:
    """The span context of a task's ``run``: in the caller's trace, else in one derived from
    the task id; its span id derives from the task id (``run`` runs once per task)."""
    trace_id = incoming.trace_id if incoming is not None else stable_trace_id(task_id)
    flags = incoming.trace_flags if incoming is not None else TraceFlags(TraceFlags.SAMPLED)
    return SpanContext(trace_id, stable_span_id("run", task_id), is_remote=True,
                       trace_flags=flags)


def notify_headers(task_id: str, traceparent: str | None,
                   submitted_at: float) -> dict[str, str]:
    """Headers of ``run``'s sends of ``on_notify``: the task's context (the caller's trace,
    else the one derived from the task id) and when the subscribers started waiting."""
    return {TRACEPARENT: format_traceparent(run_span_context(task_id,
                                                             parse_traceparent(traceparent))),
            SINCE_HEADER: repr(submitted_at)}


def subscribe_headers(task_id: str, task_traceparent: str | None,
                      traceparent: str | None) -> dict[str, str]:
    """Headers of a send of ``on_notify`` for a subscriber added later (``subscribe``, a
    repeat submit): the task's ``run`` as parent, the request that subscribed as a link when
    it came from another trace."""
    parent = run_span_context(task_id, parse_traceparent(task_traceparent))
    headers = {TRACEPARENT: format_traceparent(parent)}
    request = parse_traceparent(traceparent)
    if request is not None and request.trace_id != parent.trace_id:
        headers[LINK_HEADER] = format_traceparent(request)
    return headers


def task_traceparent(task_id: str, handler: str) -> str:
    """The ``traceparent`` of an ingress call about a task made where no span is current (the
    command line, an API that does not trace): the trace derived from the task id, so
    Restate's spans of the call land in the task's trace. A start (``run``) hangs under a
    span id of its own, any other call under the task's ``run`` span."""
    span_id = stable_span_id("submit" if handler == "run" else "run", task_id)
    return f"00-{stable_trace_id(task_id):032x}-{span_id:016x}-01"


def notify_context(task_id: str, invocation_id: str, headers: Mapping[str, str]) -> SpanContext:
    """The span context of an ``on_notify`` invocation: a child of the task's ``run`` (from
    its ``traceparent``, else derived from the task id), its span id from the invocation."""
    parent = parse_traceparent(headers.get(TRACEPARENT)) or run_span_context(task_id, None)
    return SpanContext(parent.trace_id, stable_span_id("notify", invocation_id),
                       is_remote=True, trace_flags=parent.trace_flags)
