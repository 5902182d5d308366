"""The API of the security tests: the session's real restate-server and gateway endpoint,
behind an API served in-process with keys of two tenants and of no tenant, and hook sources
of each scheme. Keys and secrets are made per session; the file holds hashes and ``${ENV}``.

A test module uses the fixture ``owned_api`` (its URL) by importing
:func:`owned_api_fixture`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from gateway.api import ApiSettings, hash_key, new_key
from gateway.channels import discover_plugins
from gateway.config import load_config
from gateway.durable import runtime_for
from gateway.local import LocalEngine, Mailbox, WebhookReceiver
from tests.conftest import TEST_CONFIG, TEST_ENV
from tests.support.service import running_api


@dataclass(frozen=True)
class Keys:
    acme: str
    globex: str
    plain: str


KEYS = Keys(acme=new_key(), globex=new_key(), plain=new_key())
ORDERS_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
GITHUB_SECRET = secrets.token_urlsafe(24)
SLACK_SECRET = secrets.token_urlsafe(24)
ENV = {**TEST_ENV, "SEC_ORDERS_SECRET": ORDERS_SECRET, "SEC_GITHUB_SECRET": GITHUB_SECRET,
       "SEC_SLACK_SECRET": SLACK_SECRET}

SECTIONS = f"""
api:
  keys:
    - {{name: acme-ci, hash: "{hash_key(KEYS.acme)}", tenant: acme}}
    - {{name: globex-ci, hash: "{hash_key(KEYS.globex)}", tenant: globex}}
    - {{name: ops, hash: "{hash_key(KEYS.plain)}"}}
hooks:
  orders:
    secret: "${{SEC_ORDERS_SECRET}}"
    prompt: "Check order {{{{ payload.order }}}}"
  acme-orders:
    secret: "${{SEC_ORDERS_SECRET}}"
    tenant: acme
    prompt: "Check Acme's order {{{{ payload.order }}}}"
  github:
    secret: "${{SEC_GITHUB_SECRET}}"
    hmac: {{signature_header: X-Hub-Signature-256, prefix: "sha256=", id_header: X-GitHub-Delivery}}
    prompt: "Review {{{{ payload.title }}}}"
  slack:
    secret: "${{SEC_SLACK_SECRET}}"
    hmac: {{signature_header: X-Slack-Signature, prefix: "v0=", id_header: X-Slack-Request-Id,
           timestamp_header: X-Slack-Request-Timestamp, signed: "v0:{{timestamp}}:{{body}}"}}
    prompt: "Answer {{{{ payload.text }}}}"
"""


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def body_of(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def github_headers(body: bytes, delivery: str) -> dict[str, str]:
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": delivery,
            "content-type": "application/json"}


def slack_headers(body: bytes, request_id: str, timestamp: float) -> dict[str, str]:
    ts = str(int(timestamp))
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body,
                      hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": ts,
            "X-Slack-Request-Id": request_id, "content-type": "application/json"}


def standard_headers(body: bytes, webhook_id: str) -> dict[str, str]:
    now = datetime.fromtimestamp(int(time.time()), tz=UTC)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(ORDERS_SECRET).sign(webhook_id, now, body.decode()),
            "content-type": "application/json"}


def read_task(api_url: str, key: str, task_id: str, timeout: float = 15) -> dict[str, Any]:
    """GET the task with ``key`` until ``run`` has recorded it (its prompt is known)."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{api_url}/v1/tasks/{task_id}", headers=auth(key), timeout=10)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        if data["prompt"] is not None or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def run_invocations(engine: LocalEngine, key: str) -> int:
    """How many times Restate was asked to run the task (workflow) with this key."""
    sql = ("SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = "
           f"'AsyncNotificationsAgent' AND target_handler_name = 'run' AND "
           f"target_service_key = '{key}'")
    r = httpx.post(f"{engine.admin_url}/query", json={"query": sql},
                   headers={"accept": "application/json"}, timeout=10)
    r.raise_for_status()
    return int(r.json()["rows"][0]["n"])


@contextmanager
def serve_api(directory: Path, engine: LocalEngine, mailbox: Mailbox,
              receiver: WebhookReceiver) -> Iterator[str]:
    """The API of :data:`SECTIONS` in front of ``engine`` (whose gateway endpoint is
    registered); yields its URL."""
    path = directory / "gateway.yaml"
    path.write_text(TEST_CONFIG.replace("MAILBOX_PORT", str(mailbox.port)).replace(
        "RECEIVER_URL", receiver.url) + SECTIONS)
    plugins = discover_plugins()
    config = load_config(path, plugins=plugins, env=ENV)
    runtime = runtime_for(config, plugins)
    with running_api(ApiSettings.from_config(config), runtime, engine) as url:
        yield url


@pytest.fixture(scope="session", name="owned_api")
def owned_api_fixture(gateway: str, restate_server: LocalEngine, mailbox: Mailbox,
                      webhook_receiver: WebhookReceiver,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API with tenants' keys and hook sources of every scheme, on the session's Restate."""
    with serve_api(tmp_path_factory.mktemp("owned-api"), restate_server, mailbox,
                   webhook_receiver) as url:
        yield url
