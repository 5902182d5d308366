"""Secrets a plugin reads from the environment itself are redacted like those of the file.

``SMTP_PASSWORD`` (and ``WEBHOOK_SECRET``) are set only in the environment; the configuration
never names them. An SMTP server that refuses the login and echoes the password in its reply
(Apprise logs that reply as "Socket Exception: ..." at debug), and a webhook receiver whose
error reply names the signing secret, must not get either secret into a log line (captured
through the real logging chain), a receipt or an error: the tasks run on the real Restate
server, through the gateway's workflow.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import BaseModel, ConfigDict, Field

from gateway.channels import (
    SECRET,
    Channel,
    ChannelPlugin,
    Message,
    SendReceipt,
    discover_plugins,
)
from gateway.config import load_config
from gateway.core import DeliveryState, Subscription, TaskRequest
from gateway.durable import (
    GatewayClient,
    Runtime,
    build_runtime,
    current_runtime,
    install_runtime,
    runtime_for,
)
from gateway.local import free_port
from gateway.observability.setup import NOISY, configure_logging, set_redactor

pytestmark = pytest.mark.restate

#: URL-unsafe characters on purpose: Apprise URLs carry it percent-encoded
SMTP_PASSWORD = "env-only p@ss/w0rd+%&"
ENV_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"env-only-webhook-signing-key!!").decode()


def spellings(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote(secret), quote_plus(secret)]


def leaks(texts: list[str], secret: str) -> list[str]:
    return [text[:300] for text in texts for s in spellings(secret) if s in text]


class EchoingAuthFailure:
    """aiosmtpd authenticator that refuses every login and repeats the password it got."""

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        password = auth_data.password.decode()
        return AuthResult(success=False, handled=False,
                          message=f"535 5.7.8 password {password} is not right")


class _Sink:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 accepted"


@pytest.fixture
def refusing_smtp() -> Iterator[Controller]:
    controller = Controller(_Sink(), hostname="127.0.0.1", port=free_port(),
                            authenticator=EchoingAuthFailure(), auth_require_tls=False)
    controller.start()
    yield controller
    controller.stop()


class _TattleHandler(BaseHTTPRequestHandler):
    """Refuses every webhook with a reason phrase that names the secret it was signed with."""

    secret = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(400, f"signature does not match {self.secret}")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def tattler(secret: str) -> Iterator[str]:
    """A webhook receiver (its URL) whose refusals name ``secret``."""
    handler = type("Handler", (_TattleHandler,), {"secret": secret})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def tattling_receiver() -> Iterator[str]:
    with tattler(ENV_WEBHOOK_SECRET) as url:
        yield url


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """Every log line of the process at debug level, as JSON, through the gateway's chain."""
    stream = io.StringIO()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *NOISY)}
    handler = configure_logging(level=logging.DEBUG, fmt="json", stream=stream, cache=False)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        structlog.reset_defaults()


@pytest.fixture
def env_only_runtime(tmp_path: Path, refusing_smtp: Controller,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """The gateway's runtime from a file that names no secret; the secrets are in the
    environment only. Installed (with its redactor) for the session's gateway endpoint."""
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("WEBHOOK_SECRET", ENV_WEBHOOK_SECRET)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "channels:\n"
        "  login-email:\n    plugin: email\n    allow_private_targets: true\n"
        f"    options: {{host: 127.0.0.1, port: {refusing_smtp.port}, username: bob}}\n"
        "    retry: {max_attempts: 2, initial_interval: 0.2, attempt_timeout: 5}\n"
        "  env-webhook:\n    plugin: webhook\n"
        "    options: {allow_private_targets: true}\n"
        "    retry: {max_attempts: 1, attempt_timeout: 5}\n",
        encoding="utf-8",
    )
    plugins = discover_plugins()
    runtime = runtime_for(load_config(config, plugins=plugins), plugins)
    before = current_runtime()
    install_runtime(runtime)
    set_redactor(runtime.redact)
    try:
        yield runtime
    finally:
        install_runtime(before)
        set_redactor(None)


def _failed_receipt(client: GatewayClient, target: str | Subscription
                    ) -> tuple[str, dict[str, Any]]:
    task_id = f"env-secret-{uuid.uuid4().hex[:10]}"
    client.submit(task_id, TaskRequest(prompt="Report", subscriptions=[
        Subscription.parse(target)]))
    status = client.wait(task_id, timeout=60)
    [receipt] = status.deliveries
    assert receipt.state is DeliveryState.FAILED, receipt
    return status.model_dump_json(), receipt.model_dump()


def test_an_smtp_password_from_the_environment_never_reaches_logs_or_receipts(
        gateway: str, client: GatewayClient, env_only_runtime: Runtime,
        debug_logs: io.StringIO) -> None:
    status, receipt = _failed_receipt(client, "login-email:jane@example.com")
    lines = debug_logs.getvalue().splitlines()
    # the leak was provoked: the server's reply, password and all, was logged (redacted)
    echoed = [json.loads(line)["event"] for line in lines if "is not right" in line]
    assert any(e.startswith("Socket Exception") for e in echoed), lines[-30:]
    assert all("password [redacted] is not right" in e for e in echoed), echoed
    assert receipt["last_error"] and "could not connect" in receipt["last_error"]
    assert leaks([*lines, status, json.dumps(receipt)], SMTP_PASSWORD) == []


def test_a_webhook_secret_from_the_environment_never_reaches_errors_or_logs(
        gateway: str, client: GatewayClient, env_only_runtime: Runtime,
        tattling_receiver: str, debug_logs: io.StringIO) -> None:
    status, receipt = _failed_receipt(client, f"env-webhook:{tattling_receiver}/hooks/x")
    assert receipt["provider_status"] == 400
    assert receipt["last_error"].endswith(
        "HTTP 400 signature does not match [redacted] (permanent)"), receipt
    lines = debug_logs.getvalue().splitlines()
    assert leaks([*lines, status, json.dumps(receipt)], ENV_WEBHOOK_SECRET) == []


def test_a_subscribers_own_webhook_secret_never_reaches_its_receipt(
        gateway: str, client: GatewayClient, env_only_runtime: Runtime,
        debug_logs: io.StringIO) -> None:
    own = "whsec_" + base64.b64encode(b"the-subscriber's-own-signing-key").decode()
    with tattler(own) as url:
        subscriber = Subscription.parse({"channel": "env-webhook", "target": f"{url}/hooks/y",
                                         "options": {"secret": own}})
        status, receipt = _failed_receipt(client, subscriber)
    assert receipt["last_error"].endswith(
        "HTTP 400 signature does not match [redacted] (permanent)"), receipt
    assert leaks([status, json.dumps(receipt)], own) == []


def test_every_plugin_environment_secret_joins_the_redaction_set(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each built-in plugin's own environment secret, none of them named in the file, is
    redacted as written and URL-encoded; a secret field written literally in the file too."""
    values = {
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SLACK_BOT_TOKEN": "xoxb-1234-5678-envonlytoken",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/envonlyhookpart",
        "TWILIO_AUTH_TOKEN": "env-only-twilio-token/+=",
        "WEBHOOK_SECRET": ENV_WEBHOOK_SECRET,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    literal = "literal-password-in-the-file"
    config = tmp_path / "gateway.yaml"
    config.write_text("channels:\n  other-email:\n    plugin: email\n"
                      f"    options: {{username: bob, password: {literal}}}\n",
                      encoding="utf-8")
    plugins = discover_plugins()
    runtime = runtime_for(load_config(config, plugins=plugins), plugins)
    for value in [*values.values(), literal]:
        for spelling in spellings(value):
            assert runtime.redact(f"<{spelling}>") == "<[redacted]>", (value, spelling)
    assert runtime.redact("an ordinary line") == "an ordinary line"


class _MarkedOptions(BaseModel):
    """A third-party plugin's options: a plain-text secret marked as such, with an
    environment default, and an ordinary field that is not a secret."""

    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(default_factory=lambda: os.environ.get("ACME_API_KEY", ""),
                         json_schema_extra=SECRET)
    region: str = "eu-west-1"


class _MarkedChannel(Channel[_MarkedOptions]):
    name: ClassVar[str] = "acme"
    Options: ClassVar[type[BaseModel]] = _MarkedOptions

    async def send(self, message: Message, options: _MarkedOptions) -> SendReceipt:
        raise NotImplementedError


def test_a_field_marked_secret_in_a_third_party_plugin_joins_the_redaction_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_API_KEY", "acme-env-key-123")
    plugins = {"acme": ChannelPlugin("acme", _MarkedChannel, "gateway-channel-acme", "1.0")}
    runtime = build_runtime(plugins=plugins)
    assert runtime.redact("key=acme-env-key-123 in eu-west-1") == "key=[redacted] in eu-west-1"
