"""A span exporter that removes configured secret values before spans leave the process.

The gateway's own spans carry names, ids, channels and outcomes only; this is the safety net
for what others put in: exception events, a library's attributes, an error text enabled by
``GATEWAY_TRACE_CONTENT``. It runs in the exporter's thread, never on the delivery path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status
from opentelemetry.util import types

__all__ = ["RedactingExporter"]


def _attrs(attributes: types.Attributes, redact: Callable[[str], str]) -> types.Attributes:
    if not attributes:
        return attributes
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(value, str):
            out[key] = redact(value)
        elif isinstance(value, tuple | list) and value and isinstance(value[0], str):
            out[key] = tuple(redact(v) for v in value)
        else:
            out[key] = value
    return out


def redact_span(span: ReadableSpan, redact: Callable[[str], str]) -> ReadableSpan:
    """A copy of ``span`` with every string attribute, event attribute and the status
    description passed through ``redact``."""
    events = [Event(e.name, _attrs(e.attributes, redact), e.timestamp) for e in span.events]
    links = [Link(link.context, _attrs(link.attributes, redact)) for link in span.links]
    status = span.status
    if status.description:
        status = Status(status.status_code, redact(status.description))
    return ReadableSpan(
        name=redact(span.name), context=span.context, parent=span.parent,
        resource=span.resource, attributes=_attrs(span.attributes, redact), events=events,
        links=links, kind=span.kind, status=status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope,
    )


class RedactingExporter(SpanExporter):
    """Exports through ``exporter`` after redacting with the function ``redactor()`` gives
    (None: as they are)."""

    def __init__(self, exporter: SpanExporter,
                 redactor: Callable[[], Callable[[str], str] | None]) -> None:
        self.exporter = exporter
        self._redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        redact = self._redactor()
        if redact is not None:
            spans = [redact_span(s, redact) for s in spans]
        return self.exporter.export(spans)

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)
