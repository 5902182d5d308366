"""Local stand-ins for the outside world, on loopback: a mailbox and a webhook receiver.

``gateway demo`` delivers to these, and the tests assert on what they received: real SMTP
(aiosmtpd) and real HTTP whose signatures are verified with the Standard Webhooks reference
library, not mocks of either.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.local.ports import free_port

__all__ = ["Mailbox", "ReceivedWebhook", "WebhookReceiver"]


class _Collector:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[Any] = []
        self.on_item: Callable[[Any], None] | None = None

    def add(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()
        if self.on_item is not None:
            self.on_item(item)

    def items(self) -> list[Any]:
        with self._cond:
            return list(self._items)

    def wait_for(self, count: int, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._items) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._items)

    def clear(self) -> None:
        with self._cond:
            self._items.clear()


class Mailbox(_Collector):
    """An SMTP server on loopback that keeps every message it receives."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self.host = host
        self._controller = Controller(self, hostname=host, port=port or free_port(host))

    @property
    def port(self) -> int:
        return int(self._controller.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.add(msg)
        return "250 Message accepted for delivery"

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def for_recipient(self, address: str) -> list[EmailMessage]:
        return [m for m in self.items() if address in str(m["X-Envelope-To"])]

    def wait_for_recipient(self, address: str, count: int, timeout: float) -> list[EmailMessage]:
        """Messages to ``address``, once there are ``count`` of them or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.for_recipient(address)
            left = deadline - time.monotonic()
            if len(found) >= count or left <= 0:
                return found
            self.wait_for(len(self.items()) + 1, min(left, 0.5))


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None
    received_at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver(_Collector):
    """An HTTP server on loopback that verifies Standard Webhooks signatures.

    ``secret``: the ``whsec_`` secret to verify with (None: accept unsigned). ``responses``:
    status codes to answer with, in order, before answering 200 (e.g. ``[503, 503]``), with
    optional ``Retry-After`` seconds in ``retry_after``. A request that fails verification is
    answered 401 and kept with ``verified=False``.
    """

    def __init__(self, secret: str | None = None, host: str = "127.0.0.1",
                 responses: Iterable[int] = (), retry_after: float | None = None,
                 fail_until: float | None = None) -> None:
        super().__init__()
        self.secret = secret
        #: answer 503 to everything until this time (epoch seconds): an outage
        self.fail_until = fail_until
        self.responses = list(responses)
        self.retry_after = retry_after
        self._lock = threading.Lock()
        #: every request, answered or refused, in order of arrival
        self.requests: list[ReceivedWebhook] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = receiver._answer(self.path, headers, body)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _answer(self, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, dict[str, str]]:
        verified: bool | None = None
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with self._lock:
            forced = self.responses.pop(0) if self.responses else None
            if forced is None and self.fail_until is not None and time.time() < self.fail_until:
                forced = 503
            self.requests.append(ReceivedWebhook(path, headers, body, verified))
        if verified is False:
            self.add(ReceivedWebhook(path, headers, body, verified))
            return 401, {}
        if forced is not None and forced >= 300:
            extra = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after else {}
            return forced, extra
        self.add(ReceivedWebhook(path, headers, body, verified))
        return 200, {}

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def delivered(self) -> list[ReceivedWebhook]:
        return [w for w in self.items() if w.verified is not False]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that went away mid-request (a crash test) is not an error of ours."""
