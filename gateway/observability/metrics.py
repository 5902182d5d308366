"""Prometheus metrics of a gateway process, and the ``/metrics`` endpoint.

The counters of the Restate handlers never count a replay twice: a delivery attempt is
counted inside its journaled step (which runs once per attempt), everything else only where
the SDK says the handler is not replaying. They live in the process that runs the handlers:
scrape ``/metrics`` on the API port (the default process serves both), or, for a process
serving only the Restate endpoint, on ``--metrics-port``.

``gateway_subscriptions_waiting`` is asked of Restate at scrape time (subscriptions whose
``on_notify`` has not finished), so it is right across processes and restarts; only a
process with the API (which knows the admin URL) reports it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = [
    "DELIVERIES",
    "DELIVERY_ATTEMPTS",
    "DELIVERY_LATENCY",
    "SUBSCRIPTIONS_WAITING",
    "TASKS_FINISHED",
    "TASKS_STARTED",
    "metrics_app",
    "metrics_endpoint",
]

TASKS_STARTED = Counter(
    "gateway_tasks_started", "Tasks whose run started (counted once per task).", ["agent"])
TASKS_FINISHED = Counter(
    "gateway_tasks_finished",
    "Tasks that finished, by outcome: succeeded, failed, or invalid (refused input).",
    ["agent", "outcome"])
DELIVERY_ATTEMPTS = Counter(
    "gateway_delivery_attempts",
    "Delivery attempts, by channel and outcome: delivered, transient, permanent, timeout.",
    ["channel", "outcome"])
DELIVERIES = Counter(
    "gateway_deliveries",
    "Subscriptions settled, by their channel and final state: delivered, "
    "delivered-by-fallback, failed, skipped, cancelled.",
    ["channel", "outcome"])
DELIVERY_LATENCY = Histogram(
    "gateway_delivery_latency_seconds",
    "From the task's result (the promise resolved) to the provider accepting the message.",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
SUBSCRIPTIONS_WAITING = Gauge(
    "gateway_subscriptions_waiting",
    "Subscriptions not yet settled (their on_notify has not finished), asked of Restate at "
    "scrape time; NaN when Restate did not answer.")


def metrics_endpoint(
    refresh: Callable[[], Awaitable[None]] | None = None,
    registry: CollectorRegistry = REGISTRY,
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving the registry in the Prometheus text format; ``refresh``
    updates scrape-time gauges first."""

    async def metrics(request: Request) -> Response:
        if refresh is not None:
            await refresh()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


def metrics_app() -> Starlette:
    """An app serving only ``GET /metrics`` (``gateway serve --metrics-port``)."""
    return Starlette(routes=[Route("/metrics", metrics_endpoint(), methods=["GET"])])
