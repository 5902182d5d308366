"""API keys and scopes, strict and bounded bodies, callback_url rules, and nothing secret in
answers or logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.api import RestateLink, create_api, hash_key
from tests.api.conftest import KEYS, MAX_BODY, load_api
from tests.api.helpers import new_id

pytestmark = [pytest.mark.restate, pytest.mark.edge_only]


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing Authorization header"),
        ({"authorization": "Bearer gwk_not-a-key-of-this-gateway"}, "unknown API key"),
        ({"authorization": f"Basic {KEYS.full}"}, "must be Bearer"),
        ({"authorization": "Bearer"}, "must be Bearer"),
    ],
)
def test_without_a_valid_key_it_is_401(api_url: str, headers: dict[str, str],
                                       message: str) -> None:
    for method, path in (("POST", "/v1/tasks"), ("GET", "/v1/tasks/x"),
                         ("POST", "/v1/tasks/x/subscriptions"),
                         ("DELETE", "/v1/tasks/x/subscriptions/s_1")):
        r = httpx.request(method, f"{api_url}{path}", json={"prompt": "x"}, headers=headers)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["error"] == "unauthenticated" and message in r.json()["message"]
        assert r.headers["www-authenticate"] == "Bearer"
        assert KEYS.full not in r.text


def test_a_key_without_the_scope_is_403(api_url: str, http: httpx.Client) -> None:
    task_id = new_id("scoped")
    r = httpx.post(f"{api_url}/v1/tasks", json={"task_id": task_id, "prompt": "x"},
                   headers=auth(KEYS.reader))
    assert r.status_code == 403 and "lacks the scope 'submit'" in r.json()["message"]
    assert "reader" in r.json()["message"]
    r = httpx.post(f"{api_url}/v1/tasks", json={"task_id": task_id, "prompt": "x"},
                   headers=auth(KEYS.submitter))
    assert r.status_code == 201
    assert httpx.get(f"{api_url}/v1/tasks/{task_id}",
                     headers=auth(KEYS.submitter)).status_code == 403
    assert httpx.get(f"{api_url}/v1/tasks/{task_id}",
                     headers=auth(KEYS.reader)).status_code == 200
    r = httpx.post(f"{api_url}/v1/tasks/{task_id}/subscriptions", json="a@example.com",
                   headers=auth(KEYS.reader))
    assert r.status_code == 403 and "'subscribe'" in r.json()["message"]


@pytest.mark.parametrize(
    ("content", "status", "field", "message"),
    [
        (b"{not json", 400, "body", "not valid JSON"),
        (b"", 400, "body", "empty"),
        (b"\xff\xfe{}", 400, "body", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 413, "body", "at most"),
        (b"[" * 20_000 + b"]" * 20_000, 400, "body", "nested too deeply"),
        (b'"just a prompt"', 422, "body", "valid dictionary"),
        (b'{"prompt": 5}', 422, "prompt", "valid string"),
        (b'{"prompt": "x", "colour": "red"}', 422, "colour", "unknown field"),
        (b'{"agent": "default"}', 422, "prompt", "give a prompt, an input object, or both"),
        (b'{"prompt": " \\n "}', 422, "prompt", "prompt is empty"),
        (b'{"prompt": "x", "agent": "nope"}', 422, "agent", "unknown agent 'nope'"),
        (b'{"prompt": "x", "labels": {"team": 1}}', 422, "labels.team", "valid string"),
        (b'{"prompt": "x", "task_id": "has space"}', 422, "task_id", "pattern"),
        (b'{"prompt": "x", "subscriptions": ["ok@example.com", "nope"]}', 422,
         "subscriptions[1]", "neither an email address"),
        (b'{"prompt": "x", "subscriptions": [{"channel": "slak", "target": "#x"}]}', 422,
         "subscriptions[0]", "unknown channel 'slak'"),
        (b'{"prompt": "x", "callback_url": "ftp://example.com/hook"}', 422, "callback_url",
         "http"),
    ],
)
def test_malformed_and_oversized_bodies_are_4xx_naming_the_field(
    http: httpx.Client, content: bytes, status: int, field: str, message: str
) -> None:
    r = http.post("/v1/tasks", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()
    assert any(f["field"] == field and message in f["message"] for f in error["fields"]), error


def test_a_body_without_a_length_is_cut_off_at_the_limit(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(MAX_BODY // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    r = http.post("/v1/tasks", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "too_large"


def test_a_bad_idempotency_key_is_a_422(http: httpx.Client) -> None:
    r = http.post("/v1/tasks", json={"prompt": "x"}, headers={"Idempotency-Key": "x" * 300})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "Idempotency-Key"


STRICT_CONFIG = f"""
channels:
  webhook:
    options: {{secret: "${{TEST_WEBHOOK_SECRET}}"}}
api:
  channels: [email, webhook]
  keys: [{{name: full, hash: "{hash_key(KEYS.full)}"}}]
"""


@pytest.fixture
def strict_api(tmp_path: Path) -> Iterator[TestClient]:
    """An API whose webhook channel keeps its default rules (no private targets), that opens
    only email and webhook to callers, and whose Restate is not there."""
    path = tmp_path / "strict.yaml"
    path.write_text(STRICT_CONFIG)
    runtime, settings = load_api(path)
    app, _ = create_api(settings, runtime, RestateLink("http://127.0.0.1:9", "http://127.0.0.1:9"))
    with TestClient(app, headers=auth(KEYS.full)) as client:
        yield client


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        ({"callback_url": "http://127.0.0.1:8080/hook"}, "callback_url", "loopback address"),
        ({"callback_url": "http://localhost/hook"}, "callback_url", "loopback address"),
        ({"callback_url": "http://169.254.169.254/latest"}, "callback_url", "link-local"),
        ({"subscriptions": ["webhook:http://10.1.2.3/x"]}, "subscriptions[0]",
         "private address"),
        ({"callback_url": "http://user:pw@example.com/"}, "callback_url", "credentials"),
        ({"subscriptions": ["sms:+15550100"]}, "subscriptions[0]", "not open to API callers"),
        ({"subscriptions": [{"channel": "email", "target": "a@example.com",
                             "fallback": [{"channel": "slack", "target": "#x"}]}]},
         "subscriptions[0]", "channel 'slack' is not open"),
    ],
)
def test_outbound_target_rules_apply_to_what_callers_subscribe(
    strict_api: TestClient, doc: dict[str, object], field: str, message: str
) -> None:
    r = strict_api.post("/v1/tasks", json={"prompt": "x", **doc})
    assert r.status_code == 422, r.text
    error = r.json()
    assert any(f["field"] == field and message in f["message"] for f in error["fields"]), error


def test_restate_unreachable_is_a_503_not_a_crash(strict_api: TestClient) -> None:
    r = strict_api.post("/v1/tasks", json={"prompt": "x"})
    assert r.status_code == 503 and r.json()["error"] == "restate_unavailable"
    assert r.headers["retry-after"] == "1"
    ready = strict_api.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"


def test_no_key_or_signature_in_logs(api_url: str, http: httpx.Client,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    httpx.post(f"{api_url}/v1/tasks", json={"prompt": "x"},
               headers=auth("gwk_wrong-key-for-the-log-test"))
    http.post("/v1/tasks", json={"prompt": "logged?"})
    httpx.post(f"{api_url}/v1/hooks/orders", content=b"{}",
               headers={"webhook-id": "msg_x", "webhook-timestamp": "1",
                        "webhook-signature": "v1,c2lnbmF0dXJlLWZvci10aGUtbG9nLXRlc3Q="})
    text = caplog.text
    assert "refused" in text  # the hook was logged ...
    for secret in (KEYS.full, "gwk_wrong-key-for-the-log-test",
                   "c2lnbmF0dXJlLWZvci10aGUtbG9nLXRlc3Q="):
        assert secret not in text  # ... without what must stay secret
