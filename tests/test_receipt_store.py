"""One receipt store: every receipt of a task's subscriptions - its own ones, one added the
seed's way, waiting, final, cancelled - lives in the receipts object ``TaskDeliveries``, and
``status`` answers exactly what that holds. Only the gateway's handlers write there; a cancel
of a subscription the task does not have is refused, and one made twice is answered at once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from gateway.api import RestateLink
from gateway.core import DeliveryReceipt, DeliveryState, Subscription, TaskRequest, TaskStatus
from gateway.durable import GatewayClient
from gateway.local import LocalEngine, Mailbox, WebhookReceiver

pytestmark = pytest.mark.restate

JSON = {"content-type": "application/json"}


def _stored(engine: LocalEngine, task_id: str) -> list[dict[str, Any]]:
    """What the receipts object holds for the task (its shared ``list``, read-only)."""
    r = httpx.post(f"{engine.ingress_url}/TaskDeliveries/{task_id}/list", timeout=10)
    assert r.status_code == 200, r.text
    receipts: list[dict[str, Any]] = r.json()
    return receipts


def _cancel(engine: LocalEngine, task_id: str, seen: DeliveryReceipt) -> DeliveryReceipt:
    async def go() -> DeliveryReceipt:
        link = RestateLink(engine.ingress_url, engine.admin_url)
        try:
            return await asyncio.wait_for(link.cancel(task_id, seen), 20)
        finally:
            await link.aclose()
    return asyncio.run(go())


def _one_delivered(client: GatewayClient, prefix: str, to: str) -> tuple[str, TaskStatus]:
    """A task with one subscriber, run to the end: its id and its status."""
    task_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    client.submit(task_id, TaskRequest(prompt="Hello", subscriptions=[Subscription.parse(to)]))
    return task_id, client.wait(task_id, timeout=30)


def test_status_answers_what_the_one_store_holds(
    gateway: str, client: GatewayClient, restate_server: LocalEngine, mailbox: Mailbox,
    webhook_receiver: WebhookReceiver,
) -> None:
    task_id = f"store-{uuid.uuid4().hex[:10]}"
    own = f"{task_id}@example.com"
    client.submit(task_id, TaskRequest(prompt="Where is my receipt?",
                                       subscriptions=[Subscription.parse(own)]))
    seed = f"webhook:{webhook_receiver.url}/hooks/{task_id}"
    r = httpx.post(f"{restate_server.ingress_url}/restate/send/AsyncNotificationsAgent/"
                   f"{task_id}/on_notify", content=json.dumps(seed), headers=JSON, timeout=10)
    assert r.status_code == 202, r.text

    done = client.wait(task_id, timeout=30)
    assert {d.state for d in done.deliveries} == {DeliveryState.DELIVERED}
    assert {d.channel for d in done.deliveries} == {"email", "webhook"}
    stored = _stored(restate_server, task_id)
    assert [DeliveryReceipt.model_validate(r) for r in stored] == done.deliveries
    # each shows when it was subscribed, not when its last receipt was recorded
    mine = next(d for d in done.deliveries if d.channel == "email")
    assert mine.created_at == done.submitted_at < mine.updated_at
    assert mailbox.wait_for_recipient(own, 1, timeout=10)


def test_a_cancel_before_the_outcome_holds_and_a_second_one_is_answered_at_once(
    gateway: str, client: GatewayClient, restate_server: LocalEngine, mailbox: Mailbox,
) -> None:
    task_id = f"store-cancel-{uuid.uuid4().hex[:10]}"
    dropped, kept = f"{task_id}-dropped@example.com", f"{task_id}-kept@example.com"
    client.submit(task_id, TaskRequest(prompt="Take your time", agent="slow",
                                       subscriptions=[Subscription.parse(dropped),
                                                      Subscription.parse(kept)]))
    waiting = client.status(task_id)
    for _ in range(100):
        if len(waiting.deliveries) == 2:
            break
        time.sleep(0.05)
        waiting = client.status(task_id)
    seen = next(d for d in waiting.deliveries if d.address == dropped)
    assert seen.state is DeliveryState.WAITING

    first = _cancel(restate_server, task_id, seen)
    assert first.state is DeliveryState.CANCELLED
    # recorded before the answer: status says so at once
    now = {d.subscription_id: d.state for d in client.status(task_id).deliveries}
    assert now[seen.subscription_id] is DeliveryState.CANCELLED

    done = client.wait(task_id, timeout=30)
    states = {d.address: d.state for d in done.deliveries}
    assert states == {dropped: DeliveryState.CANCELLED, kept: DeliveryState.DELIVERED}
    # the outcome is known now: a second cancel attaches to what holds the subscriber
    again = _cancel(restate_server, task_id, seen)
    assert again.state is DeliveryState.CANCELLED
    assert again.subscription_id == seen.subscription_id
    assert mailbox.wait_for_recipient(kept, 1, timeout=10)
    assert mailbox.for_recipient(dropped) == []


def test_a_cancel_of_a_subscription_the_task_does_not_have_is_refused(
    gateway: str, client: GatewayClient, restate_server: LocalEngine,
) -> None:
    task_id, done = _one_delivered(client, "store-none", "a@example.com")
    forged = done.deliveries[0].model_copy(update={"subscription_id": "s_forged0000000000",
                                                   "state": DeliveryState.WAITING})
    url = f"{restate_server.ingress_url}/AsyncNotificationsAgent/{task_id}/cancel"
    r = httpx.post(url, content=forged.model_dump_json(), headers=JSON,
                   timeout=20)
    assert r.status_code == 404, r.text
    assert "has no subscription s_forged0000000000" in r.text
    assert [d.subscription_id for d in client.status(task_id).deliveries] == [
        done.deliveries[0].subscription_id]


def test_only_the_gateway_writes_receipts(
    gateway: str, client: GatewayClient, restate_server: LocalEngine,
) -> None:
    task_id, done = _one_delivered(client, "store-forge", "b@example.com")
    real = done.deliveries[0]
    forged = real.model_copy(update={"state": DeliveryState.FAILED, "last_error": "forged"})
    base = f"{restate_server.ingress_url}/TaskDeliveries/{task_id}"
    for handler, body in (("record", forged.model_dump_json()),
                          ("claim", json.dumps([forged.model_dump(mode="json")]))):
        r = httpx.post(f"{base}/{handler}", content=body, headers=JSON, timeout=10)
        assert 400 <= r.status_code < 500, (handler, r.status_code, r.text)
    # the shape cancel uses to hold a subscriber is not a subscriber when it comes from outside
    marker = {"cancelled": real.model_dump(mode="json")}
    r = httpx.post(f"{restate_server.ingress_url}/AsyncNotificationsAgent/{task_id}/on_notify",
                   content=json.dumps(marker), headers=JSON, timeout=10)
    assert r.status_code == 400, r.text
    after = client.status(task_id)
    assert next(d for d in after.deliveries if d.subscription_id == real.subscription_id) == real
