"""Redrive: a failed delivery, once its receiver recovers, is sent again in a new durable
attempt chain with the same message id; refused for a delivered or unknown subscription."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from gateway.api import RestateLink
from gateway.core import DeliveryReceipt, DeliveryState, Subscription, TaskRequest, UserInputError
from gateway.durable import GatewayClient
from gateway.local import LocalEngine, WebhookReceiver
from tests.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.restate


async def _redrive(engine: LocalEngine, task_id: str, subscription_id: str) -> DeliveryReceipt:
    link = RestateLink(engine.ingress_url, engine.admin_url)
    try:
        return await link.redrive(task_id, subscription_id)
    finally:
        await link.aclose()


def test_a_failed_webhook_is_redriven_once_with_the_same_webhook_id(
    gateway: str, client: GatewayClient, restate_server: LocalEngine
) -> None:
    # down for the 3 attempts the test config allows, then up again
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[503, 503, 503]).start()
    try:
        task_id = f"redrive-{uuid.uuid4().hex[:10]}"
        client.submit(task_id, TaskRequest(prompt="Try again later", subscriptions=[
            Subscription.parse(f"webhook:{receiver.url}/hooks/{task_id}")]))
        [failed] = client.wait(task_id, timeout=30).deliveries
        assert failed.state is DeliveryState.FAILED and failed.attempts == 3
        assert len(receiver.requests) == 3 and receiver.delivered() == []

        started = asyncio.run(_redrive(restate_server, task_id, failed.subscription_id))
        assert started.state is DeliveryState.RETRYING

        [receipt] = client.wait(task_id, timeout=30).deliveries
        assert receipt.state is DeliveryState.DELIVERED, receipt
        assert receipt.message_id == failed.message_id
        # the new attempt follows the failed ones in the receipt
        assert [(h.number, h.outcome) for h in receipt.history] == [
            (1, "failed"), (2, "failed"), (3, "failed"), (4, "delivered")]
        assert receipt.created_at == failed.created_at
        assert len(receiver.delivered()) == 1
        assert {r.headers["webhook-id"] for r in receiver.requests} == {failed.message_id}

        with pytest.raises(UserInputError, match="is delivered: only a failed delivery"):
            client.redrive(task_id, failed.subscription_id)
        with pytest.raises(UserInputError, match="has no subscription"):
            client.redrive(task_id, "s_0000000000000000")
        assert len(receiver.requests) == 4  # nothing more was sent
    finally:
        receiver.stop()


def test_the_handlers_describe_their_json_schemas(gateway: str,
                                                   restate_server: LocalEngine) -> None:
    """Typed handlers: Restate's admin API (and its UI playground) shows what each takes."""
    doc = httpx.get(f"{restate_server.admin_url}/services/AsyncNotificationsAgent",
                    timeout=10).json()
    handlers = {h["name"]: h for h in doc["handlers"]}
    notify = handlers["on_notify"]["input_json_schema"]
    kinds = [s.get("type") for s in notify["anyOf"]]
    assert kinds == ["string", "object"]  # the seed's "me@example.com", or a subscription
    assert {"channel", "target", "fallback"} <= set(notify["anyOf"][1]["properties"])
    assert "deliveries" in handlers["status"]["output_json_schema"]["properties"]
    assert "prompt" in handlers["run"]["input_json_schema"]["anyOf"][1]["properties"]
    assert "subscription_id" in handlers["cancel"]["input_json_schema"]["properties"]
