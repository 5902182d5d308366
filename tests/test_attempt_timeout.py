"""One time limit per delivery attempt: the channel's ``retry.attempt_timeout``.

A webhook receiver on loopback reads the first request of each path and then stalls. The
``brief-webhook`` channel of the test configuration has five-second attempts and no timeout
option of its own; the ``webhook`` channel has ten, lowered to five for a single subscription
by the caller's ``options.timeout``. Either way the stalled attempt ends after four seconds
with the plugin's own "timed out" error in the receipt (a second before the gateway's cutoff,
as with the default of 30 s), and the retry is delivered.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gateway.core import DeliveryState, Subscription, TaskRequest
from gateway.durable import GatewayClient

#: the longest a stalled request is held (the test releases it sooner, at its end)
STALL_LIMIT = 15.0


class StallingReceiver:
    """Answers 200 to every request, except the first of each path: that one is read, kept
    and never answered until :meth:`stop` (or ``STALL_LIMIT``)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        #: (path, arrival on the monotonic clock, webhook-id) of every request
        self.requests: list[tuple[str, float, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    first = all(p != self.path for p, _, _ in receiver.requests)
                    receiver.requests.append(
                        (self.path, time.monotonic(), self.headers.get("webhook-id", "")))
                if first:
                    receiver.release.wait(STALL_LIMIT)
                    self.close_connection = True
                    return  # the sender gave up long ago: nothing to answer
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def arrivals(self, path: str) -> list[float]:
        with self.lock:
            return [at for p, at, _ in self.requests if p == path]

    def ids(self, path: str) -> set[str]:
        with self.lock:
            return {mid for p, _, mid in self.requests if p == path}

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stalling() -> Iterator[StallingReceiver]:
    receiver = StallingReceiver()
    yield receiver
    receiver.stop()


def test_the_attempt_timeout_alone_cuts_a_stalled_attempt_which_is_retried(
    gateway: str, client: GatewayClient, stalling: StallingReceiver
) -> None:
    task_id = f"stall-{uuid.uuid4().hex[:10]}"
    by_channel = f"/{task_id}/channel"  # brief-webhook: retry.attempt_timeout 5 s
    by_caller = f"/{task_id}/caller"  # webhook (10 s), lowered by the caller's options.timeout
    client.submit(task_id, TaskRequest(prompt="Answer slowly", subscriptions=[
        Subscription(channel="brief-webhook", target=stalling.url + by_channel),
        Subscription(channel="webhook", target=stalling.url + by_caller, options={"timeout": 5}),
    ]))
    status = client.wait(task_id, timeout=60)
    receipts = {r.target.rsplit("/", 1)[-1]: r for r in status.deliveries}
    assert set(receipts) == {"channel", "caller"}, status.deliveries
    for name, path in (("channel", by_channel), ("caller", by_caller)):
        receipt = receipts[name]
        assert receipt.state is DeliveryState.DELIVERED, receipt
        assert receipt.attempts == 2
        first, second = receipt.history
        assert (first.outcome, second.outcome) == ("failed", "delivered")
        # the plugin's own error, a second before the core's cutoff at five seconds
        assert first.error is not None
        assert "timed out after 4s (attempt timeout 5s)" in first.error, first
        stalled, retried = stalling.arrivals(path)
        # cut within five seconds: not the ten of the webhook channel, nor a plugin's own
        # timeout (the webhook plugin's was 10 s), nor the default attempt timeout of 30 s
        assert retried - stalled < 9.5, (name, retried - stalled)
        assert len(stalling.ids(path)) == 1  # one message, retried
