"""Logs and traces of a gateway process, set up once, at the entry point.

:func:`setup_observability` is called by ``gateway up``, ``serve`` and ``demo`` (never on
import) and reads the environment:

==================================  ===========================================================
``GATEWAY_LOG_LEVEL``               ``debug``, ``info`` (default), ``warning``, ``error``
``GATEWAY_LOG_FORMAT``              ``json`` (one object a line) or ``console``; default: the
                                    console view on a TTY, JSON lines otherwise
``OTEL_TRACES_EXPORTER``            ``otlp``, ``console``, ``none`` (comma-separated); default
                                    ``otlp`` when an OTLP endpoint is set, else ``none``
``OTEL_EXPORTER_OTLP_ENDPOINT``     collector base URL (``/v1/traces`` is added for HTTP), or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``  the full traces URL; ``..._HEADERS``, ``..._TIMEOUT``
                                    and ``..._COMPRESSION`` as the OTel SDK reads them
``OTEL_EXPORTER_OTLP_PROTOCOL``     ``http/protobuf`` (default) or ``grpc`` (needs
                                    ``opentelemetry-exporter-otlp-proto-grpc`` installed)
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``
                                    as the OTel SDK reads them; ``OTEL_SDK_DISABLED=true``: none
``GATEWAY_TRACE_CONTENT=1``         prompts, outputs, targets and error texts may go into span
                                    attributes (off: names, ids, channels and outcomes only)
==================================  ===========================================================

Logs: structlog and the standard library's logging (Restate SDK, apprise, httpx, hypercorn)
share one processor chain: level, logger, time, the task/subscription/channel of the handler
running, ``trace_id``/``span_id`` of the current span, and the redaction of every configured
secret value; addresses in Apprise's own lines masked (``m***@example.com``). Lines written
while a Restate handler replays its journal are dropped (the SDK's ``RestateLoggingFilter``).
Nothing is formatted below the level. At ``info`` a task tells its story in a few lines
(:mod:`gateway.durable._task_log`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from restate import RestateLoggingFilter
from restate.server_context import current_context

from gateway.core import UserInputError
from gateway.observability import trace as _trace
from gateway.observability._log_mask import mask_library_lines
from gateway.observability._span_redaction import RedactingExporter

__all__ = [
    "bind_delivery",
    "configure_logging",
    "restate_server_tracing_env",
    "set_redactor",
    "setup_observability",
    "tracer_provider",
    "tracer_provider_from_env",
]

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
#: libraries that log a line per request at INFO (with URLs): quiet unless debugging.
#: Apprise's lines ("Sent Email to ...") stay, masked (gateway.observability._log_mask): they
#: say which provider accepted a message, within the task's context
NOISY = ("httpx", "httpcore", "hpack", "hypercorn.access", "aiosmtpd", "mail.log")
HANDLER_NAME = "gateway-structlog"
SERVICE_NAME = "notification-gateway"

_redact: Callable[[str], str] | None = None
#: (subscription id, channel) of the on_notify running in this task
_delivery: ContextVar[tuple[str, str] | None] = ContextVar("gateway_delivery", default=None)
_set_up = False


# --- context of a log line -----------------------------------------------------------------


def bind_delivery(subscription_id: str, channel: str) -> None:
    """Name the subscription and channel a handler is delivering to, for its log lines."""
    _delivery.set((subscription_id, channel))


def set_redactor(redact: Callable[[str], str] | None) -> None:
    """The function that removes configured secret values (``Runtime.redact``); replaced on
    a configuration reload."""
    global _redact
    _redact = redact


def _add_handler_context(logger: Any, method: str, event: MutableMapping[str, Any]
                         ) -> MutableMapping[str, Any]:
    try:
        ctx = current_context()
    except LookupError:  # not inside a Restate handler
        ctx = None
    if ctx is not None:
        key = getattr(ctx, "key", None)
        if key is not None:
            event.setdefault("task_id", key())
        event.setdefault("invocation_id", ctx.request().id)
        delivery = _delivery.get()
        if delivery is not None:
            event.setdefault("subscription", delivery[0])
            event.setdefault("channel", delivery[1])
    return event


def _add_trace_ids(logger: Any, method: str, event: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    sc = trace.get_current_span().get_span_context()
    if sc.is_valid:
        event["trace_id"] = f"{sc.trace_id:032x}"
        event["span_id"] = f"{sc.span_id:016x}"
    return event


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {k: _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v, redact) for v in value]
    return redact(str(value))


def _redact_secrets(logger: Any, method: str, event: MutableMapping[str, Any]
                    ) -> MutableMapping[str, Any]:
    redact = _redact
    if redact is None:
        return event
    return {k: _redacted(v, redact) for k, v in event.items()}


# --- logging -------------------------------------------------------------------------------


def configure_logging(*, level: int = logging.INFO, fmt: str = "json",
                      stream: TextIO | None = None, cache: bool = True) -> logging.Handler:
    """Route structlog and the standard library's logging through one chain to ``stream``
    (stderr); ``fmt``: ``json`` or ``console``. Returns the handler it installed on the
    root logger (replacing one installed before)."""
    stream = stream if stream is not None else sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_handler_context,
        _add_trace_ids,
    ]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache,
    )
    # tracebacks become text before redaction, in both formats: exception texts carry secrets
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        # secrets first: a masked address could no longer be recognised as one
        processors=[*final, _redact_secrets, mask_library_lines, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.addFilter(RestateLoggingFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else
                                         max(level, logging.WARNING))
    return handler


def _log_level(value: str) -> int:
    try:
        return LEVELS[value.strip().lower()]
    except KeyError:
        raise UserInputError(f"GATEWAY_LOG_LEVEL={value!r}: use one of "
                             f"{', '.join(LEVELS)}") from None


# --- tracing -------------------------------------------------------------------------------


def tracer_provider(exporters: Sequence[SpanExporter], *, batch: bool = True,
                    redact: Callable[[], Callable[[str], str] | None] = lambda: _redact,
                    resource: Resource | None = None) -> TracerProvider:
    """A provider exporting to ``exporters`` (batched, or one span at a time), with the ids
    the handlers' spans need (:class:`gateway.observability.trace.StableIds`) and secrets
    redacted."""
    provider = TracerProvider(
        resource=resource or Resource.create({"service.name": SERVICE_NAME}),
        id_generator=_trace.StableIds())
    for exporter in exporters:
        wrapped = RedactingExporter(exporter, redact)
        provider.add_span_processor(BatchSpanProcessor(wrapped) if batch
                                    else SimpleSpanProcessor(wrapped))
    return provider


def _exporters(env: Mapping[str, str]) -> list[str]:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not raw:
        endpoint = (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        return ["otlp"] if endpoint else []
    names = [n.strip() for n in raw.split(",") if n.strip() and n.strip() != "none"]
    for name in names:
        if name not in ("otlp", "console"):
            raise UserInputError(f"OTEL_TRACES_EXPORTER={raw!r}: the gateway exports to otlp, "
                                 "console or none")
    return names


def _protocol(env: Mapping[str, str]) -> str:
    value = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
             or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if value not in ("http/protobuf", "grpc"):
        raise UserInputError(f"OTEL_EXPORTER_OTLP_PROTOCOL={value!r}: use http/protobuf or "
                             "grpc")
    return value


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    if _protocol(env) == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]  # optional
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise UserInputError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: pip install "
                "opentelemetry-exporter-otlp-proto-grpc (or use http/protobuf)") from None
        exporter: SpanExporter = GrpcExporter()
        return exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def tracer_provider_from_env(env: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """The provider the OTel environment variables describe (None: no exporter)."""
    names = _exporters(env)
    if not names:
        return None
    exporters = [_otlp_exporter(env) if name == "otlp" else ConsoleSpanExporter(out=sys.stderr)
                 for name in names]
    resource = Resource.create({"service.name": SERVICE_NAME}) if not env.get(
        "OTEL_SERVICE_NAME") else Resource.create()
    return tracer_provider(exporters, resource=resource)


def restate_server_tracing_env(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment that makes a local restate-server export its invocation traces to the
    gateway's OTLP endpoint (empty: none set, or ``RESTATE_TRACING_ENDPOINT`` chosen already).

    restate-server sends OTLP/gRPC to an ``http(s)://`` endpoint and OTLP/HTTP to an
    ``otlp+http(s)://`` one, which must include ``/v1/traces``."""
    if env.get("RESTATE_TRACING_ENDPOINT") or "otlp" not in _exporters(env):
        return {}
    signal = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if _protocol(env) == "grpc":
        return {"RESTATE_TRACING_ENDPOINT": signal or base}
    url = signal or base.rstrip("/") + "/v1/traces"
    return {"RESTATE_TRACING_ENDPOINT": "otlp+" + url}


# --- the entry point -----------------------------------------------------------------------


def setup_observability(env: Mapping[str, str] = os.environ, *,
                        stream: TextIO | None = None) -> TracerProvider | None:
    """Logging and tracing of this process, from ``env``; once (later calls do nothing).
    Returns the tracer provider (None: tracing is off)."""
    global _set_up
    if _set_up:
        return None
    stream = stream if stream is not None else sys.stderr
    level = _log_level(env.get("GATEWAY_LOG_LEVEL", "info"))
    fmt = env.get("GATEWAY_LOG_FORMAT", "").strip().lower()
    if fmt not in ("", "json", "console"):
        raise UserInputError(f"GATEWAY_LOG_FORMAT={fmt!r}: use json or console")
    provider = tracer_provider_from_env(env)
    configure_logging(level=level, fmt=fmt or ("console" if stream.isatty() else "json"),
                      stream=stream)
    if provider is not None:
        trace.set_tracer_provider(provider)
        _trace.install(provider, content=env.get("GATEWAY_TRACE_CONTENT", "") == "1")
    _set_up = True
    return provider
