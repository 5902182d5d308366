"""The agent's own spans (pydantic-ai) inside a Restate handler: none while replaying (as
``restate.ext.tracing`` does), and under the handler's span when the span they would nest in
was not emitted (it was started by a replayed part of the run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, Tracer
from opentelemetry.util import types

__all__ = ["ReplayAwareProvider"]

#: the context of the handler span running in this task (None: none)
HandlerContext = Callable[[], otel_context.Context | None]
#: whether the handler running in this task replays its journal
Replaying = Callable[[], bool]


class _ReplayAwareTracer(Tracer):
    def __init__(self, tracer: Tracer, handler: HandlerContext, replaying: Replaying) -> None:
        self._tracer = tracer
        self._handler = handler
        self._replaying = replaying

    def _parent(self, context: otel_context.Context | None) -> otel_context.Context | None:
        if trace.get_current_span(context).get_span_context().is_valid:
            return context
        handler = self._handler()
        return handler if handler is not None else context

    def start_span(self, name: str, context: otel_context.Context | None = None,
                   kind: SpanKind = SpanKind.INTERNAL, attributes: types.Attributes = None,
                   links: Sequence[Link] | None = None, start_time: int | None = None,
                   record_exception: bool = True, set_status_on_exception: bool = True
                   ) -> Span:
        if self._replaying():
            return INVALID_SPAN
        return self._tracer.start_span(name, self._parent(context), kind, attributes, links,
                                       start_time, record_exception, set_status_on_exception)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # a plain context manager suffices
        self, name: str, context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL, attributes: types.Attributes = None,
        links: Sequence[Link] | None = None, start_time: int | None = None,
        record_exception: bool = True, set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        if self._replaying():
            with trace.use_span(INVALID_SPAN, end_on_exit=False) as span:
                yield span
            return
        with self._tracer.start_as_current_span(
            name, self._parent(context), kind, attributes, links, start_time,
            record_exception, set_status_on_exception, end_on_exit,
        ) as span:
            yield span


class ReplayAwareProvider(trace.TracerProvider):
    """A provider for pydantic-ai whose tracers skip replays and nest under the handler."""

    def __init__(self, provider: TracerProvider, handler: HandlerContext,
                 replaying: Replaying) -> None:
        self._provider = provider
        self._handler = handler
        self._replaying = replaying

    def get_tracer(self, instrumenting_module_name: str,
                   instrumenting_library_version: str | None = None,
                   schema_url: str | None = None,
                   attributes: types.Attributes | None = None) -> Tracer:
        return _ReplayAwareTracer(self._provider.get_tracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes),
            self._handler, self._replaying)
