"""A cancel answers "cancelled" only when nothing is sent afterwards: a delivery waiting to
retry is stopped; one whose attempt is in flight is answered with what it came to."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from gateway.api import RestateLink
from gateway.core import DeliveryReceipt, DeliveryState, Subscription, TaskRequest, TaskStatus
from gateway.durable import GatewayClient
from gateway.local import LocalEngine, WebhookReceiver
from tests.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.restate


class HeldReceiver(WebhookReceiver):
    """Holds every request until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(secret=WEBHOOK_SECRET)
        self.arrived = threading.Event()
        self.release = threading.Event()

    def _answer(self, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, dict[str, str]]:
        self.arrived.set()
        self.release.wait(30)
        return super()._answer(path, headers, body)


def _cancel(engine: LocalEngine, task_id: str, seen: DeliveryReceipt,
            release: threading.Event | None = None) -> DeliveryReceipt:
    async def go() -> DeliveryReceipt:
        link = RestateLink(engine.ingress_url, engine.admin_url)
        try:
            pending = asyncio.ensure_future(link.cancel(task_id, seen))
            if release is not None:  # the held attempt ends while the cancel is under way
                threading.Timer(0.5, release.set).start()
            return await pending
        finally:
            await link.aclose()
    return asyncio.run(go())


def _until(client: GatewayClient, task_id: str, sid: str, state: DeliveryState) -> TaskStatus:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.status(task_id)
        if any(d.subscription_id == sid and d.state is state for d in status.deliveries):
            return status
        time.sleep(0.05)
    raise AssertionError(f"{sid} never {state.value}: {client.status(task_id)}")


def test_cancelled_means_nothing_is_sent_afterwards(
    gateway: str, client: GatewayClient, restate_server: LocalEngine
) -> None:
    held = HeldReceiver().start()
    # refuses once and asks for 5 s: the delivery then waits to retry
    refusing = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[503], retry_after=5).start()
    try:
        task_id = f"cancel-race-{uuid.uuid4().hex[:10]}"
        submitted = [Subscription.parse(f"webhook:{r.url}/hooks/{task_id}")
                     for r in (held, refusing)]
        client.submit(task_id, TaskRequest(prompt="Race me", subscriptions=submitted))
        assert held.arrived.wait(30)
        by_url = {d.address: d.subscription_id for d in client.status(task_id).deliveries}
        held_sid, refused_sid = (by_url[s.target] for s in submitted)

        status = _until(client, task_id, refused_sid, DeliveryState.RETRYING)
        retrying = next(d for d in status.deliveries if d.subscription_id == refused_sid)
        cancelled = _cancel(restate_server, task_id, retrying)
        assert cancelled.state is DeliveryState.CANCELLED, cancelled

        # its attempt was in flight when the cancel came: the answer is what it came to
        in_flight = next(d for d in status.deliveries if d.subscription_id == held_sid)
        answer = _cancel(restate_server, task_id, in_flight, release=held.release)
        assert answer.state is DeliveryState.DELIVERED, answer
        assert len(held.delivered()) == 1

        final = {d.subscription_id: d.state for d in client.wait(task_id, 30).deliveries}
        assert final == {held_sid: DeliveryState.DELIVERED, refused_sid: DeliveryState.CANCELLED}
        assert len(refusing.requests) == 1  # never retried after "cancelled"
    finally:
        held.release.set()
        held.stop()
        refusing.stop()
