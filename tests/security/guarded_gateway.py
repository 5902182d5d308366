"""A gateway on its own restate-server whose channels do NOT allow private targets, the HTTP
API in front of it, a loopback listener that counts every connection it gets, and a resolver
that points chosen host names at that listener (as hostile DNS would).

Used by the egress and channel-allowance tests; the session gateway of tests/conftest.py
allows loopback targets, so these tests need their own.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.api import ApiSettings, hash_key, new_key
from gateway.channels import _egress, discover_plugins
from gateway.config import load_config
from gateway.durable import runtime_for
from gateway.local import LocalEngine, Mailbox
from tests.conftest import TEST_ENV, new_engine
from tests.support.service import running_api, running_endpoint

API_KEY = new_key()
TWILIO_SID = "AC" + "0" * 32
#: a made-up Twilio token (Apprise checks only its shape)
TWILIO_TOKEN = "f00dSECRETtoken1234"
ENV = {**TEST_ENV, "TEST_TWILIO_TOKEN": TWILIO_TOKEN}
SLACK_HOOK = "https://hooks.slack.com/services/T0000TEST/B0000TEST/abcdefghijklmnop"

#: LISTENER_PORT: the counting listener; MAILBOX_PORT: a real SMTP mailbox; API_CHANNELS: the
#: api.channels line (or nothing, for the default)
CONFIG = """
agents:
  default: {model: offline}
channels:
  email:                  # no allow_private_targets: the guard refuses its loopback server
    plugin: email
    options: {host: 127.0.0.1, port: LISTENER_PORT, tls: none, from_addr: gw@example.com}
    retry: {max_attempts: 1, attempt_timeout: 5}
  lab-email:              # the same kind of server, allowed by this file
    plugin: email
    allow_private_targets: true
    options: {host: 127.0.0.1, port: MAILBOX_PORT, tls: none, from_addr: gw@example.com}
    retry: {max_attempts: 1, attempt_timeout: 5}
  webhook:
    plugin: webhook
    options: {secret: "${TEST_WEBHOOK_SECRET}"}
    retry: {max_attempts: 1, attempt_timeout: 5}
  slack:
    plugin: slack
    retry: {max_attempts: 1, attempt_timeout: 5}
  sms:
    plugin: sms
    options: {account_sid: TWILIO_SID, auth_token: "${TEST_TWILIO_TOKEN}",
              from_number: "+15550100000"}
    retry: {max_attempts: 1, attempt_timeout: 5}
  apprise:
    plugin: apprise
    retry: {max_attempts: 1, attempt_timeout: 5}
subscriptions:            # the operator's own (trusted) Apprise subscription, aimed at loopback
  - name: ops-json
    match: {labels: {route: ops-json}}
    notify: [{channel: apprise, target: "json://127.0.0.1:LISTENER_PORT/notify"}]
api:
  keys: [{name: full, hash: "API_KEY_HASH"}]
API_CHANNELS
"""


class ConnectionCounter:
    """A loopback TCP listener that counts the connections it accepts and closes them."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@dataclass
class Guarded:
    engine: LocalEngine
    service_url: str
    api_url: str
    counter: ConnectionCounter
    mailbox: Mailbox

    @property
    def ingress(self) -> str:
        return self.engine.ingress_url

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {API_KEY}"}


def config_text(counter_port: int, mailbox_port: int, api_channels: list[str] | None) -> str:
    channels = f"  channels: [{', '.join(api_channels)}]" if api_channels is not None else ""
    return (CONFIG.replace("LISTENER_PORT", str(counter_port))
            .replace("MAILBOX_PORT", str(mailbox_port)).replace("TWILIO_SID", TWILIO_SID)
            .replace("API_KEY_HASH", hash_key(API_KEY)).replace("API_CHANNELS", channels))


@contextmanager
def guarded_gateway(always_replay: bool, api_channels: list[str] | None = None
                    ) -> Iterator[Guarded]:
    """Everything above, started; stopped at the end."""
    base = Path(tempfile.mkdtemp(prefix="gateway-security-"))
    counter = ConnectionCounter()
    mailbox = Mailbox().start()
    engine = new_engine(base / "restate", always_replay=always_replay)
    try:
        path = base / "gateway.yaml"
        path.write_text(config_text(counter.port, mailbox.port, api_channels))
        plugins = discover_plugins()
        config = load_config(path, plugins=plugins, env=ENV)
        runtime = runtime_for(config, plugins)
        engine.start()
        with running_endpoint(runtime, engine) as service_url, \
                running_api(ApiSettings.from_config(config), runtime_for(config, plugins),
                            engine) as api_url:
            yield Guarded(engine, service_url, api_url, counter, mailbox)
    finally:
        engine.stop()
        mailbox.stop()
        counter.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def api_for(guarded: Guarded, api_channels: list[str] | None) -> Iterator[str]:
    """Another API in front of the same gateway, with ``api.channels`` set; yields its URL."""
    base = Path(tempfile.mkdtemp(prefix="gateway-security-api-"))
    try:
        path = base / "gateway.yaml"
        path.write_text(config_text(guarded.counter.port, guarded.mailbox.port, api_channels))
        plugins = discover_plugins()
        config = load_config(path, plugins=plugins, env=ENV)
        runtime = runtime_for(config, plugins)
        with running_api(ApiSettings.from_config(config), runtime, guarded.engine) as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


def point_names_at(monkeypatch: pytest.MonkeyPatch, port: int, *names: str) -> None:
    """Make ``names`` resolve to 127.0.0.1:``port`` for the gateway in this process (hostile
    DNS, or a name that rebinds to loopback); every other name resolves as usual."""
    _egress._install()  # the hooks are in place before the first delivery
    system: Callable[..., Any] = _egress._system_getaddrinfo
    wanted = {n.lower() for n in names}

    def resolve(host: Any, service: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.lower().rstrip(".") in wanted:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                     ("127.0.0.1", port))]
        return system(host, service, *args, **kwargs)

    monkeypatch.setattr(_egress, "_system_getaddrinfo", resolve)
