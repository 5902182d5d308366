"""Set-up from the environment: exporters, protocols, the Restate server's endpoint, the log
chain (levels, formats, redaction), and the W3C context handed between the handlers."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.core import UserInputError
from gateway.durable.runtime import redactor
from gateway.observability import trace as _trace
from gateway.observability.setup import (
    NOISY,
    configure_logging,
    restate_server_tracing_env,
    set_redactor,
    tracer_provider,
    tracer_provider_from_env,
)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, {}),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
     {"RESTATE_TRACING_ENDPOINT": "otlp+http://collector:4318/v1/traces"}),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/"},
     {"RESTATE_TRACING_ENDPOINT": "otlp+https://collector:4318/v1/traces"}),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom/traces"},
     {"RESTATE_TRACING_ENDPOINT": "otlp+http://c:4318/custom/traces"}),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     {"RESTATE_TRACING_ENDPOINT": "http://c:4317"}),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "RESTATE_TRACING_ENDPOINT": "x"}, {}),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "console"}, {}),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, {}),
])
def test_the_restate_server_exports_where_the_gateway_does(
        env: dict[str, str], expected: dict[str, str]) -> None:
    assert restate_server_tracing_env(env) == expected


def test_no_exporter_no_provider() -> None:
    assert tracer_provider_from_env({}) is None
    assert tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "none"}) is None


def test_an_otlp_endpoint_makes_an_http_exporter() -> None:
    provider = tracer_provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "notification-gateway"
    provider.shutdown()


@pytest.mark.parametrize(("env", "says"), [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "otlp, console or none"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
     "http/protobuf or grpc"),
])
def test_unsupported_settings_say_what_to_use(env: dict[str, str], says: str) -> None:
    with pytest.raises(UserInputError, match=says):
        tracer_provider_from_env(env)


def test_grpc_without_its_exporter_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # as if the optional gRPC exporter were not installed (None in sys.modules: ImportError)
    for name in ("opentelemetry.exporter.otlp.proto.grpc",
                 "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(UserInputError, match="pip install opentelemetry-exporter-otlp-proto-grpc"):
        tracer_provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                                  "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    levels = {name: logging.getLogger(name).level for name in ("", *NOISY)}
    handler = configure_logging(level=logging.INFO, fmt="json", stream=stream, cache=False)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        structlog.reset_defaults()
        set_redactor(None)


def test_one_chain_for_structlog_and_stdlib_with_trace_ids_and_redaction(
        json_logs: io.StringIO) -> None:
    set_redactor(redactor(["s3cr3t-value"]))
    exporter = InMemorySpanExporter()
    provider = tracer_provider([exporter], batch=False)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer") as span:
        logging.getLogger("gateway.test").warning("stdlib %s", "s3cr3t-value")
        structlog.get_logger("gateway.test").info("native", token="s3cr3t-value", n=3)
    logging.getLogger("gateway.test").debug("below the level")
    logging.getLogger("httpx").info("HTTP Request: POST http://x (quiet below warning)")
    provider.shutdown()
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["stdlib [redacted]", "native"]
    assert lines[1]["token"] == "[redacted]" and lines[1]["n"] == 3
    sc = span.get_span_context()
    for line in lines:
        assert line["trace_id"] == f"{sc.trace_id:032x}"
        assert line["span_id"] == f"{sc.span_id:016x}"
        assert line["logger"] == "gateway.test"
        assert "timestamp" in line
    assert "s3cr3t-value" not in json_logs.getvalue()


def test_the_console_view(json_logs: io.StringIO) -> None:
    stream = io.StringIO()
    handler = configure_logging(level=logging.INFO, fmt="console", stream=stream, cache=False)
    try:
        logging.getLogger("gateway.test").warning("readable %s", "line")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "readable line" in text and "gateway.test" in text and not text.startswith("{")


def test_spans_lose_configured_secrets_on_export() -> None:
    exporter = InMemorySpanExporter()
    redact = redactor(["hunter2-secret"])
    provider = tracer_provider([exporter], batch=False, redact=lambda: redact)
    span = provider.get_tracer("test").start_span(
        "x", attributes={"a": "pw=hunter2-secret", "n": 1, "list": ("hunter2-secret",)})
    span.add_event("e", {"why": "hunter2-secret leaked"})
    span.end()
    provider.shutdown()
    [out] = exporter.get_finished_spans()
    assert out.attributes == {"a": "pw=[redacted]", "n": 1, "list": ("[redacted]",)}
    assert out.events[0].attributes == {"why": "[redacted] leaked"}


def test_the_context_handed_to_on_notify_depends_on_the_request_only() -> None:
    # without a traceparent, the task's own trace, derived from its id
    own = _trace.parse_traceparent(_trace.notify_headers("t-1", None, 1.5)["traceparent"])
    assert own is not None and own == _trace.run_span_context("t-1", None)
    assert own.trace_id == _trace.stable_trace_id("t-1")
    task = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    assert _trace.subscribe_headers("t-1", task, None) == {
        "traceparent": _trace.format_traceparent(_trace.run_span_context(
            "t-1", _trace.parse_traceparent(task)))}
    # the command line's calls carry the task's trace: its start under a span of its own,
    # the others under the task's run
    submit = _trace.parse_traceparent(_trace.task_traceparent("t-1", "run"))
    status = _trace.parse_traceparent(_trace.task_traceparent("t-1", "status"))
    assert submit is not None and status is not None
    assert submit.trace_id == status.trace_id == own.trace_id
    assert status.span_id == own.span_id != submit.span_id
    # a subscriber added by a request in the task's own trace is not linked to it
    assert _trace.subscribe_headers("t-1", None, _trace.task_traceparent("t-1", "subscribe")
                                    ) == {"traceparent": _trace.format_traceparent(own)}
    incoming = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    headers = _trace.notify_headers("t-1", incoming, 1.5)
    assert headers == _trace.notify_headers("t-1", incoming, 1.5)  # stable on a replay
    assert headers is not None
    run = _trace.parse_traceparent(headers["traceparent"])
    assert run is not None and run.trace_id == int("1" * 32, 16)
    assert run.span_id == _trace.run_span_context("t-1", None).span_id
    assert headers["x-gateway-since"] == "1.5"
    # a later subscriber joins the task's trace and links the request that subscribed
    later = "00-" + "3" * 32 + "-" + "4" * 16 + "-01"
    sub = _trace.subscribe_headers("t-1", incoming, later)
    assert sub == {"traceparent": headers["traceparent"], "x-gateway-link": later}
    assert _trace.parse_traceparent("00-zz-yy-01") is None
    assert _trace.parse_traceparent("00-" + "0" * 32 + "-" + "2" * 16 + "-01") is None


def test_apprise_lines_are_masked_after_secrets_are_redacted(json_logs: io.StringIO) -> None:
    # a secret that looks like an address is redacted whole, not masked to a part of it
    set_redactor(redactor(["relay.s3cr3t@example.com"]))
    apprise_log = logging.getLogger("apprise")
    apprise_log.info("Sent Email to %s", "jane@example.com")
    apprise_log.info("Sent Email to %s", "relay.s3cr3t@example.com")
    logging.getLogger("gateway.api").info("subscriber jane@example.com")
    sent, secret, own = (json.loads(line) for line in json_logs.getvalue().splitlines())
    assert sent["event"] == "Sent Email to j***@example.com" and sent["level"] == "info"
    assert secret["event"] == "Sent Email to [redacted]"
    assert "jane@example.com" not in json.dumps(sent) and "s3cr3t" not in json.dumps(secret)
    assert own["event"] == "subscriber jane@example.com"  # the gateway's own lines: as written
