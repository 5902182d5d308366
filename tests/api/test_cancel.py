"""DELETE of a subscription still waiting: one durable step (the workflow's ``cancel``), no
admin API; its receipt says so; a delivered one cannot be cancelled."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.local import Mailbox
from tests.api.helpers import finished, new_id, poll

pytestmark = pytest.mark.restate


def test_cancel_a_waiting_subscription(http: httpx.Client, mailbox: Mailbox) -> None:
    task_id = new_id("cancel")
    dropped, kept = f"{task_id}-dropped@example.com", f"{task_id}-kept@example.com"
    r = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Take your time",
                                     "agent": "slow", "subscriptions": [dropped, kept]})
    assert r.status_code == 201, r.text
    drop_id, keep_id = (s["subscription_id"] for s in r.json()["subscriptions"])
    # a subscriber added later, while the task runs, has its own receipt and invocation
    late = f"{task_id}-late@example.com"
    late_id = http.post(f"/v1/tasks/{task_id}/subscriptions", json=late).json()["subscription_id"]

    waiting = poll(http, task_id, lambda d: len(d["deliveries"]) == 3, timeout=10)
    assert {d["state"] for d in waiting["deliveries"]} == {"waiting"}
    assert waiting["state"] == "running"

    for sid in (drop_id, late_id):
        r = http.delete(f"/v1/tasks/{task_id}/subscriptions/{sid}")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "cancelled" and r.json()["subscription_id"] == sid
    again = http.delete(f"/v1/tasks/{task_id}/subscriptions/{drop_id}")
    assert again.status_code == 200 and again.json()["state"] == "cancelled"

    done = poll(http, task_id, finished, timeout=30)
    states = {d["subscription_id"]: d["state"] for d in done["deliveries"]}
    assert done["state"] == "succeeded"
    assert states == {drop_id: "cancelled", late_id: "cancelled", keep_id: "delivered"}
    assert mailbox.wait_for_recipient(kept, 1, timeout=10)
    time.sleep(0.5)
    assert mailbox.for_recipient(dropped) == [] and mailbox.for_recipient(late) == []

    delivered = http.delete(f"/v1/tasks/{task_id}/subscriptions/{keep_id}")
    assert delivered.status_code == 409, delivered.text
    assert "already delivered" in delivered.json()["message"]
    missing = http.delete(f"/v1/tasks/{task_id}/subscriptions/s_0000000000000000")
    assert missing.status_code == 404

    # a redrive is for a failed delivery only
    for sid, state in ((keep_id, "delivered"), (drop_id, "cancelled")):
        refused = http.post(f"/v1/tasks/{task_id}/subscriptions/{sid}/redrive")
        assert refused.status_code == 409, refused.text
        assert f"is {state}: only a failed delivery" in refused.json()["message"]
    unknown = http.post(f"/v1/tasks/{task_id}/subscriptions/s_0000000000000000/redrive")
    assert unknown.status_code == 404 and task_id in unknown.json()["message"]
