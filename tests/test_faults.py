"""Fault tests: crashes of the gateway and of the server, an outage of a channel, a node of a
3-node cluster killed. Nothing may be lost; duplicates only as retries of one webhook-id."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.core import DeliveryState, Subscription, TaskRequest
from gateway.durable import GatewayClient
from gateway.local import WebhookReceiver
from tests.conftest import TEST_ENV, WEBHOOK_SECRET, new_engine
from tests.support.cluster import LocalCluster
from tests.support.process import GatewayProcess, wait_until

pytestmark = [pytest.mark.restate, pytest.mark.slow]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(secret=WEBHOOK_SECRET).start()
    yield r
    r.stop()


def submit_many(ingress: str, receiver: WebhookReceiver, run: str, tasks: int,
                subs: int) -> list[str]:
    """Submit ``tasks`` tasks with ``subs`` webhook subscribers each, concurrently."""
    ids = [f"{run}-{i}" for i in range(tasks)]

    async def go() -> None:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:
            sem = asyncio.Semaphore(32)

            async def one(task_id: str) -> None:
                body = {"prompt": f"fault test {task_id}", "subscriptions": [
                    f"webhook:{receiver.url}/f/{task_id}/{c}" for c in range(subs)]}
                async with sem:
                    r = await http.post(f"{ingress}/restate/send/AsyncNotificationsAgent/"
                                        f"{task_id}/run", json=body)
                    r.raise_for_status()

            await asyncio.gather(*(one(t) for t in ids))

    asyncio.run(go())
    return ids


def unique_deliveries(receiver: WebhookReceiver, run: str) -> Counter[str]:
    return Counter(h.headers["webhook-id"] for h in receiver.delivered()
                   if h.path.startswith(f"/f/{run}-"))


def assert_all_delivered_once(receiver: WebhookReceiver, run: str, want: int,
                              timeout: float) -> Counter[str]:
    assert wait_until(lambda: len(unique_deliveries(receiver, run)) >= want, timeout), (
        f"{len(unique_deliveries(receiver, run))}/{want} delivered")
    ids = unique_deliveries(receiver, run)
    assert len(ids) == want
    assert all(h.verified for h in receiver.delivered())
    return ids


def test_gateway_killed_with_600_deliveries_in_flight(
    tmp_path: Path, config_file: Path, receiver: WebhookReceiver
) -> None:
    engine = new_engine(tmp_path / "restate")
    engine.start()
    gateway = GatewayProcess(config_file, engine.admin_url, TEST_ENV).start()
    run = f"k9-{uuid.uuid4().hex[:6]}"
    try:
        submit_many(engine.ingress_url, receiver, run, tasks=200, subs=3)
        wait_until(lambda: len(unique_deliveries(receiver, run)) >= 50, 30)
        gateway.kill()
        in_flight = 600 - len(unique_deliveries(receiver, run))
        gateway = GatewayProcess(config_file, engine.admin_url, TEST_ENV,
                                 port=gateway.port).start()
        ids = assert_all_delivered_once(receiver, run, 600, timeout=180)
        duplicates = sum(n - 1 for n in ids.values())
        print(f"in flight at the kill: {in_flight}; duplicates (same webhook-id): {duplicates}")
        with GatewayClient(engine.ingress_url) as client:
            status = client.wait(f"{run}-0", 30)
        assert [d.state for d in status.deliveries] == [DeliveryState.DELIVERED] * 3
    finally:
        gateway.stop()
        engine.stop()


def test_server_killed_mid_run_and_restarted_on_its_data(
    tmp_path: Path, config_file: Path, receiver: WebhookReceiver
) -> None:
    engine = new_engine(tmp_path / "restate")
    engine.start()
    gateway = GatewayProcess(config_file, engine.admin_url, TEST_ENV).start()
    run = f"srv-{uuid.uuid4().hex[:6]}"
    try:
        submit_many(engine.ingress_url, receiver, run, tasks=100, subs=2)
        wait_until(lambda: len(unique_deliveries(receiver, run)) >= 20, 30)
        engine.kill()
        time.sleep(1)
        engine.start()  # same data directory, same ports
        assert_all_delivered_once(receiver, run, 200, timeout=180)
    finally:
        gateway.stop()
        engine.stop()


def test_channel_outage_of_30s_then_recovery(tmp_path: Path, config_file: Path) -> None:
    engine = new_engine(tmp_path / "restate")
    engine.start()
    gateway = GatewayProcess(config_file, engine.admin_url, TEST_ENV).start()
    outage = WebhookReceiver(secret=WEBHOOK_SECRET, fail_until=time.time() + 30).start()
    client = GatewayClient(engine.ingress_url)
    try:
        task_ids = [f"outage-{uuid.uuid4().hex[:8]}" for _ in range(10)]
        for task_id in task_ids:
            client.submit(task_id, TaskRequest(prompt="Wait for the channel", subscriptions=[
                Subscription(channel="patient-webhook", target=f"{outage.url}/o/{task_id}")]))
        assert wait_until(lambda: len(outage.delivered()) >= 10, 90)
        assert outage.fail_until is not None
        assert min(h.received_at for h in outage.delivered()) >= outage.fail_until
        for task_id in task_ids:
            [receipt] = client.wait(task_id, 30).deliveries
            assert receipt.state is DeliveryState.DELIVERED
            assert receipt.attempts > 3 and receipt.last_error is None  # history has them
            *failures, last = receipt.history
            assert last.outcome == "delivered" and last.number == receipt.attempts
            assert failures and all(f.error and "503" in f.error for f in failures)
        assert len({h.headers["webhook-id"] for h in outage.delivered()}) == 10
    finally:
        client.close()
        outage.stop()
        gateway.stop()
        engine.stop()


def test_cluster_keeps_delivering_when_a_node_dies(
    tmp_path: Path, config_file: Path, receiver: WebhookReceiver
) -> None:
    cluster = LocalCluster(tmp_path / "cluster").start()
    first = cluster.nodes[0]
    gateway = GatewayProcess(config_file, first.admin_url, TEST_ENV).start()
    run = f"clu-{uuid.uuid4().hex[:6]}"
    try:
        submit_many(first.ingress_url, receiver, run, tasks=60, subs=2)
        wait_until(lambda: len(unique_deliveries(receiver, run)) >= 10, 60)
        cluster.nodes[2].kill()
        more = submit_many(first.ingress_url, receiver, run + "-after", tasks=20, subs=2)
        assert_all_delivered_once(receiver, run, 120 + 2 * len(more), timeout=240)
    finally:
        gateway.stop()
        cluster.stop()
