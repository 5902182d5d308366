"""Fixtures of the API tests: the API served in-process by hypercorn on a free port, in front
of the session's real restate-server and gateway endpoint (see tests/conftest.py).

The configuration is the session's test configuration plus ``api`` (three keys: every scope,
read only, submit only; a small body limit) and ``hooks`` (a Standard Webhooks source and a
GitHub-style HMAC source). Keys and hook secrets are made per session; only their hashes and
``${ENV}`` references are in the file.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.api import ApiSettings, hash_key, new_key
from gateway.channels import discover_plugins
from gateway.config import load_config
from gateway.durable import Runtime, runtime_for
from gateway.local import LocalEngine, Mailbox, WebhookReceiver
from tests.conftest import TEST_CONFIG, TEST_ENV
from tests.support.service import running_api

MAX_BODY = 65_536


@dataclass(frozen=True)
class Keys:
    full: str
    reader: str
    submitter: str


KEYS = Keys(full=new_key(), reader=new_key(), submitter=new_key())
HOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
GITHUB_SECRET = secrets.token_urlsafe(24)
API_ENV = {**TEST_ENV, "TEST_HOOK_SECRET": HOOK_SECRET, "TEST_GITHUB_SECRET": GITHUB_SECRET}

API_SECTIONS = f"""
api:
  max_body_bytes: {MAX_BODY}
  keys:
    - {{name: full, hash: "{hash_key(KEYS.full)}"}}
    - {{name: reader, hash: "{hash_key(KEYS.reader)}", scopes: [read]}}
    - {{name: submitter, hash: "{hash_key(KEYS.submitter)}", scopes: [submit]}}
hooks:
  orders:
    secret: "${{TEST_HOOK_SECRET}}"
    prompt: "Check order {{{{ payload.order.id }}}} for {{{{ payload.customer }}}}"
    labels: {{team: shop, order: "{{{{ payload.order.id }}}}"}}
  github:
    secret: "${{TEST_GITHUB_SECRET}}"
    hmac: {{signature_header: X-Hub-Signature-256, prefix: "sha256=", id_header: X-GitHub-Delivery}}
    prompt: "Review {{{{ payload.pull_request.title }}}}"
  echo:
    secret: "${{TEST_HOOK_SECRET}}"
    prompt: "{{{{ payload.text }}}}"
"""


def api_config_text(mailbox: Mailbox, receiver: WebhookReceiver, extra: str = API_SECTIONS) -> str:
    return TEST_CONFIG.replace("MAILBOX_PORT", str(mailbox.port)).replace(
        "RECEIVER_URL", receiver.url) + extra


def load_api(path: Path) -> tuple[Runtime, ApiSettings]:
    """The runtime and API settings of a configuration file, through the real loader."""
    plugins = discover_plugins()
    config = load_config(path, plugins=plugins, env=API_ENV)
    return runtime_for(config, plugins), ApiSettings.from_config(config)


@pytest.fixture(scope="session")
def api_config_file(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox,
                    webhook_receiver: WebhookReceiver) -> Path:
    path = tmp_path_factory.mktemp("api-config") / "gateway.yaml"
    path.write_text(api_config_text(mailbox, webhook_receiver))
    return path


@pytest.fixture(scope="session")
def api_url(gateway: str, restate_server: LocalEngine, api_config_file: Path) -> Iterator[str]:
    """The API, served by hypercorn in a thread, talking to the session's Restate."""
    runtime, settings = load_api(api_config_file)
    with running_api(settings, runtime, restate_server) as url:
        yield url


@pytest.fixture(scope="session")
def http(api_url: str) -> Iterator[httpx.Client]:
    """A client of the API with the all-scopes key."""
    with httpx.Client(base_url=api_url, timeout=30,
                      headers={"authorization": f"Bearer {KEYS.full}"}) as client:
        yield client
