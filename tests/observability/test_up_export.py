"""``gateway up`` with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: the gateway and the restate-server
it starts both export OTLP/HTTP to the endpoint, in the task's one trace."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from gateway.local import Mailbox, WebhookReceiver, free_port
from tests.api.conftest import API_ENV, KEYS, api_config_text
from tests.api.helpers import finished, new_id, poll

pytestmark = [pytest.mark.restate, pytest.mark.slow]

GATEWAY = "gateway-under-test"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str


class OtlpReceiver:
    """A loopback OTLP/HTTP collector: keeps the spans of every POST /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver.add(ExportTraceServiceRequest.FromString(body))
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(ReceivedSpan(service, span.name,
                                                       span.trace_id.hex()))

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


def test_gateway_up_exports_its_spans_and_the_restate_servers_to_one_endpoint(
        tmp_path: Path, collector: OtlpReceiver, mailbox: Mailbox,
        webhook_receiver: WebhookReceiver) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(api_config_text(mailbox, webhook_receiver))
    ports = {name: free_port() for name in ("ingress", "admin", "node", "service", "api")}
    env = {**os.environ, **API_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
           "OTEL_BSP_SCHEDULE_DELAY": "200", "GATEWAY_LOG_FORMAT": "json",
           "OTEL_SERVICE_NAME": GATEWAY}
    env.pop("RESTATE_TRACING_ENDPOINT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "up", "--config", str(config),
         "--data-dir", str(tmp_path / "restate-data"),
         *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port)))],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if "press Ctrl-C" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(90), "\n".join(lines)
        api = f"http://127.0.0.1:{ports['api']}"
        task_id = new_id("exported")
        with httpx.Client(base_url=api, timeout=30,
                          headers={"authorization": f"Bearer {KEYS.full}"}) as http:
            r = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Export me",
                                             "subscriptions": [f"{task_id}@example.com"]})
            assert r.status_code == 201, r.text
            status = poll(http, task_id, finished, timeout=60)
            assert [d["state"] for d in status["deliveries"]] == ["delivered"]
            metrics = http.get("/metrics").text
        assert 'gateway_deliveries_total{channel="email",outcome="delivered"} 1.0' in metrics

        def task_trace() -> str | None:
            with collector.lock:
                return next((s.trace_id for s in collector.spans
                             if s.name == "AsyncNotificationsAgent/run"), None)

        wanted = {"POST /v1/tasks", "accept task", "AsyncNotificationsAgent/run",
                  "AsyncNotificationsAgent/on_notify", "deliver email"}
        deadline = time.monotonic() + 30
        services: set[str] = set()
        while time.monotonic() < deadline:
            # spans arrive in batches: wait for all of them, not the first of each service
            trace_id = task_trace()
            if trace_id:
                spans = collector.in_trace(trace_id)
                services = {s.service for s in spans}
                seen = {s.name for s in spans if s.service == GATEWAY}
                if len(services) >= 2 and wanted <= seen:
                    break
            time.sleep(0.2)
        assert trace_id, "\n".join(lines[-30:])
        names = {(s.service, s.name) for s in collector.in_trace(trace_id)}
        gateway_names = {n for svc, n in names if svc == GATEWAY}
        assert wanted <= gateway_names
        # the restate-server's own invocation spans, in the same trace, under its own name
        assert services - {GATEWAY}, names
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0, "\n".join(lines[-30:])
    # its log lines are JSON and carry the trace ids
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(r.get("trace_id") == trace_id for r in records), lines[-30:]
    secrets = [v for k, v in API_ENV.items()] + [KEYS.full]
    assert not [line for line in lines for s in secrets if s in line]
