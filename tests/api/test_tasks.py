"""The API's task endpoints against the real restate-server: submit (idempotent), status,
subscriptions (inline, callback_url, late), health and readiness, the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from gateway.local import Mailbox, WebhookReceiver
from tests.api.conftest import KEYS
from tests.api.helpers import finished, new_id, poll

pytestmark = pytest.mark.restate


def hook_url(receiver: WebhookReceiver, task_id: str) -> str:
    return f"{receiver.url}/hooks/{task_id}"


def test_health_readiness_and_the_document(api_url: str) -> None:
    assert httpx.get(f"{api_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{api_url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    doc = httpx.get(f"{api_url}/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/v1/tasks", "/v1/tasks/{task_id}", "/v1/tasks/{task_id}/subscriptions",
        "/v1/tasks/{task_id}/subscriptions/{subscription_id}",
        "/v1/tasks/{task_id}/subscriptions/{subscription_id}/redrive", "/v1/hooks/{source}",
        "/v1/redrive",
        "/healthz", "/readyz",
    }
    assert doc["paths"]["/v1/tasks"]["post"]["security"] == [{"apiKey": []}]


def test_submit_is_idempotent_by_key_and_by_task_id(http: httpx.Client, api_url: str) -> None:
    key = new_id("idem")
    first = http.post("/v1/tasks", json={"prompt": "Summarise the release notes"},
                      headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["created"] is True
    assert created["status_url"] == f"{api_url}/v1/tasks/{created['task_id']}"
    assert first.headers["location"] == created["status_url"]

    again = http.post("/v1/tasks", json={"prompt": "Summarise the release notes"},
                      headers={"Idempotency-Key": key})
    assert again.status_code == 200
    assert again.json()["task_id"] == created["task_id"] and again.json()["created"] is False

    # the same Idempotency-Key from another caller is another task
    other = httpx.post(f"{api_url}/v1/tasks", json={"prompt": "Summarise"},
                       headers={"Idempotency-Key": key,
                                "authorization": f"Bearer {KEYS.submitter}"})
    assert other.status_code == 201 and other.json()["task_id"] != created["task_id"]

    task_id = new_id("explicit")
    assert http.post("/v1/tasks", json={"task_id": task_id, "prompt": "x"}).status_code == 201
    repeat = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "x"})
    assert repeat.status_code == 200 and repeat.json()["task_id"] == task_id

    status = poll(http, created["task_id"], finished)
    assert status["state"] == "succeeded"
    assert "Summarise the release notes" in status["output"]


def test_inline_subscribers_and_a_callback_url_are_told(
    http: httpx.Client, mailbox: Mailbox, webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("inline")
    to = f"{task_id}@example.com"
    r = http.post("/v1/tasks", json={
        "task_id": task_id, "prompt": "Triage the incident", "labels": {"team": "sre"},
        "input": {"incident": 42, "severity": "high"},
        "subscriptions": [to], "callback_url": hook_url(webhook_receiver, task_id),
    })
    assert r.status_code == 201, r.text
    subs = r.json()["subscriptions"]
    assert [s["channel"] for s in subs] == ["email", "webhook"]
    assert all(s["subscription_id"].startswith("s_") for s in subs)
    assert to not in str(subs)  # targets are shown redacted

    status = poll(http, task_id, finished)
    assert status["state"] == "succeeded" and status["labels"] == {"team": "sre"}
    assert '"severity": "high"' in status["prompt"]
    assert sorted(d["state"] for d in status["deliveries"]) == ["delivered", "delivered"]
    assert mailbox.wait_for_recipient(to, 1, timeout=10)
    hooks = [h for h in webhook_receiver.delivered() if h.path == f"/hooks/{task_id}"]
    assert len(hooks) == 1 and hooks[0].verified is True


def test_a_late_subscriber_gets_the_stored_result(
    http: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("late")
    assert http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Late"}).status_code == 201
    done = poll(http, task_id, finished)
    assert done["state"] == "succeeded" and done["deliveries"] == []

    r = http.post(f"/v1/tasks/{task_id}/subscriptions",
                  json={"channel": "webhook", "target": hook_url(webhook_receiver, task_id)})
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["task_id"] == task_id and sub["channel"] == "webhook"
    status = poll(http, task_id, lambda d: bool(d["deliveries"]) and finished(d))
    [receipt] = status["deliveries"]
    assert receipt["subscription_id"] == sub["subscription_id"]
    assert receipt["state"] == "delivered"
    # the same subscriber again is the same subscription, told once
    again = http.post(f"/v1/tasks/{task_id}/subscriptions",
                      json=f"webhook:{hook_url(webhook_receiver, task_id)}")
    assert again.status_code == 201 and again.json()["subscription_id"] == sub["subscription_id"]


def test_unknown_tasks_are_404(http: httpx.Client) -> None:
    for r in (http.get(f"/v1/tasks/{new_id('never')}"),
              http.get("/v1/tasks/has%20space"),
              http.post(f"/v1/tasks/{new_id('never')}/subscriptions", json="a@example.com"),
              http.delete(f"/v1/tasks/{new_id('never')}/subscriptions/s_0123456789abcdef"),
              http.get("/v1/nothing-here")):
        assert r.status_code == 404, r.text
        assert r.json()["error"] == "not_found"
    wrong_method = http.put("/v1/tasks")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["allow"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("not-an-address", "body", "neither an email address nor CHANNEL:TARGET"),
        ({"channel": "pager", "target": "x"}, "body", "unknown channel 'pager'"),
        ({"channel": "email", "target": "a@example.com", "options": {"host": "evil"}},
         "options", "unknown field"),
        ({"channel": "email"}, "target", "Field required"),
        ({"channel": "webhook", "target": "ftp://example.com/x"}, "body", "http"),
        ({"channel": "email", "target": "a@example.com", "template": "missing"}, "body",
         "unknown template 'missing'"),
    ],
)
def test_a_bad_subscriber_is_a_422_naming_the_field(
    http: httpx.Client, body: object, field: str, message: str
) -> None:
    task_id = new_id("badsub")
    assert http.post("/v1/tasks", json={"task_id": task_id, "prompt": "x"}).status_code == 201
    r = http.post(f"/v1/tasks/{task_id}/subscriptions", json=body)
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["error"] == "invalid_request"
    assert any(f["field"] == field and message in f["message"] for f in error["fields"]), error
