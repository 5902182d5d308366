"""Fixtures of the observability tests: the session's gateway endpoint (tests/conftest.py)
with tracing installed for these tests only, an API in front of it, and its logs as JSON.

OpenTelemetry's global provider can be set once per process, so the gateway never uses it
for its own spans: :func:`gateway.observability.trace.install` takes a provider (here one with
an in-memory exporter) and :func:`gateway.observability.trace.uninstall` removes it again; the
runtime built
while it is installed (instrumented agents) replaces the session's for these tests and is
swapped back afterwards. Loggers are not cached, so other tests keep their logging.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.durable import current_runtime, install_runtime
from gateway.local import LocalEngine, Mailbox, WebhookReceiver
from gateway.observability import trace as _trace
from gateway.observability.setup import NOISY, configure_logging, set_redactor, tracer_provider
from tests.api.conftest import KEYS, api_config_text, load_api
from tests.support.service import running_api


@dataclass
class Traced:
    """The traced gateway of the observability tests."""

    api_url: str
    http: httpx.Client
    spans: InMemorySpanExporter
    logs: io.StringIO

    def log_lines(self) -> list[str]:
        return [line for line in self.logs.getvalue().splitlines() if line.strip()]

    def wait_spans(self, done: Callable[[list[ReadableSpan]], bool],
                   timeout: float = 15) -> list[ReadableSpan]:
        """The exported spans, once ``done`` says so (or the time is up)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = list(self.spans.get_finished_spans())
            if done(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)


@pytest.fixture(scope="package")
def traced(gateway: str, restate_server: LocalEngine, mailbox: Mailbox,
           webhook_receiver: WebhookReceiver,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = tracer_provider([exporter], batch=False)
    _trace.install(provider)
    logs = io.StringIO()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *NOISY)}
    handler = configure_logging(level=logging.INFO, fmt="json", stream=logs, cache=False)
    path: Path = tmp_path_factory.mktemp("observability") / "gateway.yaml"
    path.write_text(api_config_text(mailbox, webhook_receiver))
    runtime, settings = load_api(path)  # its agents are instrumented: tracing is on
    set_redactor(runtime.redact)
    before = current_runtime()
    install_runtime(runtime)
    try:
        with running_api(settings, runtime, restate_server) as api_url, httpx.Client(
                base_url=api_url, timeout=30,
                headers={"authorization": f"Bearer {KEYS.full}"}) as http:
            yield Traced(api_url, http, exporter, logs)
    finally:
        install_runtime(before)
        _trace.uninstall()
        set_redactor(None)
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        structlog.reset_defaults()
        provider.shutdown()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})
