"""Fixtures of the channel tests: loopback servers only, never the network."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.channels import Message
from gateway.local import free_port


@dataclass
class Mailbox:
    """What the loopback SMTP server received; ``refuse`` maps addresses to SMTP replies."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 Message accepted"


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, mailbox)
    finally:
        controller.stop()


def make_message(target: str, **overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "id": "msg_0123456789abcdef",
        "task_id": "task-42",
        "subscription_id": "s_0123456789abcdef",
        "kind": "result",
        "target": target,
        "subject": "Task task-42 finished",
        "text": "The agent says: all done.",
    }
    fields.update(overrides)
    return Message(**fields)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """A loopback HTTP server that records requests and answers from a script."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    #: (status, headers) answered in order; once used up, 200 with no extra headers
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    receiver = HttpReceiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with lock:
                receiver.requests.append(
                    Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                             body)
                )
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
            payload = b"ok"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
