"""Nothing fails silently through the API: a repeat submit's new subscribers are subscribed
(and listed as the task's status lists them), and subscribers the ingress refused show up."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.local import LocalEngine, Mailbox
from tests.api.helpers import finished, new_id, poll

pytestmark = pytest.mark.restate


def test_a_repeat_submit_adds_new_subscribers_and_lists_real_ids(
    http: httpx.Client, mailbox: Mailbox
) -> None:
    task_id = new_id("apidup")
    first, second = f"{task_id}-1@example.com", f"{task_id}-2@example.com"
    r = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Plan the sprint",
                                     "subscriptions": [first]})
    assert r.status_code == 201 and r.json()["subscriptions_added"] == 1, r.text
    poll(http, task_id, finished)

    again = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Plan the sprint",
                                         "subscriptions": [first, second]})
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["created"] is False and body["subscriptions_added"] == 1
    listed = {s["subscription_id"] for s in body["subscriptions"]}
    status = poll(http, task_id, lambda d: finished(d) and len(d["deliveries"]) == 2)
    assert {d["subscription_id"] for d in status["deliveries"]} == listed
    assert [d["state"] for d in status["deliveries"]] == ["delivered", "delivered"]
    assert len(mailbox.wait_for_recipient(second, 1, 10)) == 1

    same = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Plan the sprint",
                                        "subscriptions": [second, first]})
    assert same.status_code == 200 and same.json()["subscriptions_added"] == 0
    time.sleep(1)
    assert len(mailbox.for_recipient(first)) == 1 and len(mailbox.for_recipient(second)) == 1


def test_a_repeat_by_idempotency_key_adds_new_subscribers(
    http: httpx.Client, mailbox: Mailbox
) -> None:
    key = new_id("idemdup")
    to = f"{key}@example.com"
    r = http.post("/v1/tasks", json={"prompt": "Count the tickets"},
                  headers={"Idempotency-Key": key})
    assert r.status_code == 201, r.text
    task_id = r.json()["task_id"]
    again = http.post("/v1/tasks", json={"prompt": "Count the tickets", "subscriptions": [to]},
                      headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["subscriptions_added"] == 1
    [sub] = again.json()["subscriptions"]
    status = poll(http, task_id, lambda d: finished(d) and len(d["deliveries"]) == 1)
    assert [d["subscription_id"] for d in status["deliveries"]] == [sub["subscription_id"]]
    assert len(mailbox.wait_for_recipient(to, 1, 10)) == 1


def test_the_api_lists_subscribers_the_ingress_rejected(
    http: httpx.Client, restate_server: LocalEngine
) -> None:
    task_id = new_id("apibad")
    url = f"{restate_server.ingress_url}/restate/send/AsyncNotificationsAgent/{task_id}/on_notify"
    assert httpx.post(url, json="sms:not-a-number-at-all", timeout=10).status_code == 202
    deadline = time.monotonic() + 20  # 404 until the rejection is recorded
    while (r := http.get(f"/v1/tasks/{task_id}")).status_code == 404 and (
            time.monotonic() < deadline):
        time.sleep(0.1)
    assert r.status_code == 200, r.text
    status = r.json()
    assert status["state"] == "not-started"
    [rejected] = status["deliveries"]
    assert rejected["state"] == "rejected" and rejected["channel"] == "sms"
    assert rejected["target"] == "not***" and rejected["last_error"]
    assert "not-a-number-at-all" not in str(status)

    # it stays listed once the task runs
    assert http.post("/v1/tasks", json={"task_id": task_id, "prompt": "x"}).status_code == 201
    done = poll(http, task_id, finished)
    assert done["state"] == "succeeded" and done["deliveries"][0]["state"] == "rejected"
