"""Replay-aware spans, the machinery under :mod:`gateway.observability.trace`: the provider the
gateway traces with (:func:`install`), span ids fixed by the code starting a span
(:class:`StableIds`), a finished span emitted once (:func:`emit`), the span of the handler
running now (:class:`HandlerTrace`, :func:`current`), spans around handler code that a replay
runs again (:func:`step`) or inside a journaled step (:func:`journaled`), and the agent's own
spans (:func:`agent_instrumentation`). Without a provider every helper returns at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
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

__all__ = [
    "NO_SPAN", "SCOPE", "HandlerTrace", "StableIds", "active_tracer", "agent_instrumentation",
    "content_enabled", "current", "emit", "enabled", "install", "journaled", "now_ns",
    "replaying", "seconds_ns", "step", "uninstall",
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


def seconds_ns(seconds: float) -> int:
    """Epoch seconds as nanoseconds."""
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
        self.start_ns = seconds_ns(at)

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
