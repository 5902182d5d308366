"""A gateway process killed with SIGKILL between `run` and `on_notify`: nothing is lost."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.core import DeliveryState, Subscription, TaskRequest, TaskState
from gateway.durable import GatewayClient
from gateway.local import LocalEngine, Mailbox, WebhookReceiver
from tests.conftest import TEST_ENV, new_engine
from tests.support.process import GatewayProcess, wait_until

pytestmark = [pytest.mark.restate, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_engine() -> Iterator[LocalEngine]:
    """A server of its own: a registered process would take the service over from the
    in-process gateway of the other tests."""
    base = Path(tempfile.mkdtemp(prefix="gateway-test-restart-"))
    engine = new_engine(base)
    engine.start()
    yield engine
    engine.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_gateway_killed_mid_task_loses_nothing(
    own_engine: LocalEngine, config_file: Path, mailbox: Mailbox,
    webhook_receiver: WebhookReceiver,
) -> None:
    first = GatewayProcess(config_file, own_engine.admin_url, TEST_ENV).start()
    task_id = f"crash-{uuid.uuid4().hex[:8]}"
    hook = f"{webhook_receiver.url}/hooks/{task_id}"
    client = GatewayClient(own_engine.ingress_url)
    try:
        client.submit(task_id, TaskRequest(prompt="Survive a crash", agent="slow",
                                           subscriptions=[Subscription.parse("webhook:" + hook)]))
        # the agent (slow: 3 s) is running when the process dies
        assert wait_until(lambda: client.status(task_id).state is TaskState.RUNNING, 10)
        first.kill()
        # a subscriber arrives while no gateway process is up: the ingress keeps it
        r = httpx.post(f"{own_engine.ingress_url}/restate/send/AsyncNotificationsAgent/"
                       f"{task_id}/on_notify", json=f"{task_id}@example.com", timeout=10)
        assert r.status_code in (200, 202)

        second = GatewayProcess(config_file, own_engine.admin_url, TEST_ENV,
                                port=first.port).start()
        try:
            status = client.wait(task_id, timeout=60)
        finally:
            second.stop()
        assert status.state is TaskState.SUCCEEDED, status
        assert sorted(d.channel for d in status.deliveries) == ["email", "webhook"]
        assert all(d.state is DeliveryState.DELIVERED for d in status.deliveries)
        hooks = [h for h in webhook_receiver.delivered() if h.path == f"/hooks/{task_id}"]
        assert len(hooks) == 1 and hooks[0].json()["type"] == "task.succeeded"
        assert len(mailbox.wait_for_recipient(f"{task_id}@example.com", 1, 10)) == 1
    finally:
        first.stop()
        client.close()
