"""Pure parts of the front door, without Restate: key checks, signature schemes, delivery ids,
the payload mapping and its sandbox, the OpenAPI document."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

import pytest

from gateway.api import OPERATIONS, KeyRing, Unauthenticated, hash_key, new_key
from gateway.api._models import TASK_ID_PATTERN
from gateway.config import (
    ApiKey,
    HookRejected,
    HookSource,
    MappingFailed,
    hook_task_id,
    task_request,
    verify,
)
from tests.api.helpers import standard_headers

SLACK = HookSource.model_validate({
    "secret": ["old-signing-secret", "new-signing-secret"],
    "hmac": {"signature_header": "X-Slack-Signature", "prefix": "v0=",
             "timestamp_header": "X-Slack-Request-Timestamp", "id_header": "X-Slack-Id",
             "signed": "v0:{timestamp}:{body}"},
    "prompt": "{{ payload.text }}",
})
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
STANDARD = HookSource.model_validate({"secret": ["whsec_" + base64.b64encode(b"o" * 32).decode(),
                                                 SECRET], "prompt": "{{ payload.text }}"})


def slack_headers(body: bytes, secret: str, ts: float) -> dict[str, str]:
    signed = f"v0:{int(ts)}:".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {"x-slack-signature": f"v0={digest}", "x-slack-request-timestamp": str(int(ts)),
            "x-slack-id": "ev-1"}


def test_a_source_scheme_with_a_signed_timestamp_and_rotated_secrets() -> None:
    body, now = b'{"text": "hi"}', time.time()
    assert verify(SLACK, slack_headers(body, "new-signing-secret", now), body, now) == "ev-1"
    assert verify(SLACK, slack_headers(body, "old-signing-secret", now), body, now) == "ev-1"
    with pytest.raises(HookRejected, match="does not match"):
        verify(SLACK, slack_headers(body, "guess", now), body, now)
    with pytest.raises(HookRejected, match="5 minutes off"):
        verify(SLACK, slack_headers(body, "new-signing-secret", now - 400), body, now)
    moved = slack_headers(body, "new-signing-secret", now)
    moved["x-slack-request-timestamp"] = str(int(now) + 1)  # the timestamp is signed
    with pytest.raises(HookRejected, match="does not match"):
        verify(SLACK, moved, body, now)
    with pytest.raises(HookRejected, match="missing header X-Slack-Id"):
        verify(SLACK, {k: v for k, v in moved.items() if k != "x-slack-id"}, body, now)


def test_base64_digests() -> None:
    source = HookSource.model_validate({
        "secret": "shopify-secret", "prompt": "x",
        "hmac": {"signature_header": "X-Shopify-Hmac-Sha256", "encoding": "base64",
                 "id_header": "X-Shopify-Webhook-Id"}})
    body = b'{"id": 1}'
    digest = base64.b64encode(hmac.new(b"shopify-secret", body, hashlib.sha256).digest())
    headers = {"x-shopify-hmac-sha256": digest.decode(), "x-shopify-webhook-id": "w-1"}
    assert verify(source, headers, body, time.time()) == "w-1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-signature": "v1"}, "malformed"),
        ({"webhook-signature": "v1,%%%"}, "does not match"),
        ({"webhook-signature": "v2,AAAA"}, "does not match"),
        ({"webhook-timestamp": "soon"}, "not unix seconds"),
        ({"webhook-id": ""}, "missing header webhook-id"),
    ],
)
def test_standard_webhooks_refusals_never_crash(change: dict[str, str], message: str) -> None:
    body = b'{"text": "x"}'
    headers = {**standard_headers(body, "msg_1", secret=SECRET), **change}
    with pytest.raises(HookRejected, match=message):
        verify(STANDARD, headers, body, time.time())


def test_standard_webhooks_with_a_rotated_secret_and_a_body_that_is_not_utf8() -> None:
    body = b'{"text": "x"}'
    assert verify(STANDARD, standard_headers(body, "msg_1", secret=SECRET), body,
                  time.time()) == "msg_1"
    latin = b'{"text": "\xe9"}'
    headers = standard_headers(b'{"text": "e"}', "msg_2", secret=SECRET)
    with pytest.raises(HookRejected):
        verify(STANDARD, headers, latin, time.time())


@pytest.mark.parametrize("delivery", ["msg_2Kx", "a/b c", "x" * 200, "ünïcode"])
def test_a_delivery_id_always_makes_a_valid_task_id(delivery: str) -> None:
    task_id = hook_task_id("orders", delivery)
    assert re.match(TASK_ID_PATTERN, task_id) and task_id.startswith("hook-orders-")
    assert hook_task_id("orders", delivery) == task_id != hook_task_id("github", delivery)


@pytest.mark.parametrize(
    "prompt",
    ["{{ payload.__class__.__mro__ }}", "{{ ''.__class__ }}", "{% for x in range(10**9) %}",
     "{{ payload.text | nope }}"],
)
def test_the_mapping_is_sandboxed_and_fails_as_a_mapping_error(prompt: str) -> None:
    source = HookSource.model_validate({"secret": SECRET, "prompt": prompt})
    with pytest.raises(MappingFailed):
        task_request(source, "orders", "msg_1", {"text": "x"})


def test_keys_are_checked_by_hash_against_every_key() -> None:
    keys = [new_key() for _ in range(3)]
    ring = KeyRing([ApiKey(name=f"k{i}", hash=hash_key(k), scopes=["read"])
                    for i, k in enumerate(keys)])
    assert ring.authenticate(f"Bearer {keys[2]}").name == "k2"
    assert ring.authenticate(f"bearer   {keys[0]}  ").name == "k0"
    with pytest.raises(Unauthenticated, match="unknown API key"):
        ring.authenticate(f"Bearer {keys[0]}x")
    with pytest.raises(Unauthenticated, match="no API keys configured"):
        KeyRing([]).authenticate(f"Bearer {keys[0]}")
    assert re.fullmatch(r"gwk_[A-Za-z0-9_-]{43}", keys[0])
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", hash_key(keys[0]))


def test_every_operation_documents_its_errors() -> None:
    for op in OPERATIONS:
        if op.scope is not None:
            assert {401, 403} <= set(op.errors), op.operation_id
        if op.request is not None:
            assert {400, 413, 422} <= set(op.errors), op.operation_id


def test_hook_secrets_stay_out_of_reprs_and_errors() -> None:
    from gateway.config import parse_config
    from gateway.core import ConfigError
    from tests.config.fakes import fake_plugins

    text = ("hooks:\n  orders: {secret: '${ORDERS}', prompt: x}\n"
            "  github: {secret: plain-inline-secret, prompt: x, hmac: "
            "{signature_header: X-Sig, id_header: X-Id}}\n")
    config = parse_config(text, plugins=fake_plugins(), env={"ORDERS": SECRET})
    assert SECRET not in repr(config) and "plain-inline-secret" not in repr(config)
    assert config.hooks["orders"].secrets == [SECRET]
    short = "whsec_" + base64.b64encode(b"too-short").decode()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=fake_plugins(), env={"ORDERS": short})
    assert short not in str(caught.value) and "at least 16 random bytes" in str(caught.value)


def test_an_unexpected_error_is_a_json_500_that_says_nothing_inside(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from starlette.testclient import TestClient

    from gateway.api import ApiSettings, RestateLink, create_api
    from gateway.durable import Runtime

    def broken() -> Runtime:
        raise RuntimeError("internal detail: /srv/secret/path")

    key = new_key()
    settings = ApiSettings(KeyRing([ApiKey(name="k", hash=hash_key(key))]), {})
    app, _ = create_api(settings, broken, RestateLink("http://127.0.0.1:9", "http://127.0.0.1:9"))
    with TestClient(app, headers={"authorization": f"Bearer {key}"}) as client:
        r = client.post("/v1/tasks", json={"prompt": "x"})
    assert r.status_code == 500
    assert r.json() == {"error": "internal", "message": "unexpected error; it has been logged",
                        "fields": []}
    assert "RuntimeError" in caplog.text and "/srv/secret/path" not in caplog.text


def test_the_document_describes_exactly_the_routes_the_api_serves() -> None:
    """The routes are made from the operations: each documented method of each path answers
    something other than 404/405, and a method the document does not list is 405."""
    from starlette.testclient import TestClient

    from gateway.api import ApiSettings, RestateLink, create_api
    from gateway.durable import Runtime

    def no_runtime() -> Runtime:
        raise AssertionError("not reached: every request here is refused before")

    settings = ApiSettings(KeyRing([]), {})
    app, _ = create_api(settings, no_runtime,
                        RestateLink("http://127.0.0.1:9", "http://127.0.0.1:9"))
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
        served = {(op.method, op.path) for op in OPERATIONS}
        documented = {(method, path) for path, methods in document["paths"].items()
                      for method in methods}
        assert documented == served
        for method, path in sorted(documented):
            if path in ("/healthz", "/readyz"):
                continue
            concrete = path.replace("{task_id}", "t-1").replace(
                "{subscription_id}", "s_1").replace("{source}", "nosuch")
            r = client.request(method.upper(), concrete)
            assert r.status_code in (401, 404), (method, path, r.status_code, r.text)
            assert "no such resource" not in r.json()["message"]  # what an unknown path says
            assert client.request("PUT", concrete).status_code == 405
