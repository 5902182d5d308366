"""Logs (structlog, secrets redacted), traces (OpenTelemetry, replay-aware spans of the
handlers) and metrics (Prometheus). Usable by every layer above the core."""

from gateway.observability import metrics, trace
from gateway.observability.setup import (
    bind_delivery,
    configure_logging,
    restate_server_tracing_env,
    set_redactor,
    setup_observability,
    tracer_provider,
    tracer_provider_from_env,
)

__all__ = [
    "bind_delivery",
    "configure_logging",
    "metrics",
    "restate_server_tracing_env",
    "set_redactor",
    "setup_observability",
    "trace",
    "tracer_provider",
    "tracer_provider_from_env",
]
