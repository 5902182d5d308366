"""The durable notify-when-ready core against a real restate-server."""

from __future__ import annotations

import uuid

import pytest

from gateway.client import GatewayClient
from gateway.local_sinks import Mailbox
from gateway.models import DeliveryState, Subscription, TaskRequest, TaskState

pytestmark = pytest.mark.restate


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_early_email_subscriber_gets_result(gateway: str, client: GatewayClient,
                                            mailbox: Mailbox) -> None:
    task_id = new_id("early")
    to = f"{task_id}@example.com"
    submitted = client.submit(task_id, TaskRequest(prompt="Write a poem about queues",
                                                   subscriptions=[Subscription.parse(to)]))
    assert submitted.new
    status = client.wait(task_id, timeout=30)
    assert status.state is TaskState.SUCCEEDED
    assert status.output and "Write a poem about queues" in status.output
    [receipt] = status.deliveries
    assert receipt.state is DeliveryState.DELIVERED
    assert receipt.attempts == 1
    [mail] = mailbox.wait_for_recipient(to, 1, timeout=10)
    assert task_id in mail["Subject"]
