"""Fault tests: crashes of the gateway and of the server, an outage of a channel, a node of a
3-node cluster killed by its role (partition leader, metadata leader, the API's ingress).
Nothing may be lost; duplicates only as retries of one webhook-id."""

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
from gateway.local import LocalEngine, Mailbox, WebhookReceiver
from tests.api.conftest import API_ENV, KEYS, api_config_text
from tests.conftest import TEST_ENV, WEBHOOK_SECRET, new_engine
from tests.support.api_process import ApiProcess
from tests.support.cluster import LocalCluster
from tests.support.cluster_roles import (
    NOT_FINISHED,
    invocation_states,
    metadata_leader,
    node_id,
    partition_leaders,
)
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


ROLES = ["partition-leader", "metadata-leader", "api-ingress"]
NOT_A_WORKER = ["metadata-server", "log-server", "admin", "http-ingress"]


def submit_through_api(api: ApiProcess, receiver: WebhookReceiver, run: str, tasks: int,
                       subs: int, timeout: float = 45) -> list[str]:
    """Start tasks through the API, retrying a refusal while the cluster fails over (same task
    id: a task runs once), as a caller would."""
    ids = [f"{run}-{i}" for i in range(tasks)]
    auth = {"authorization": f"Bearer {KEYS.full}"}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=api.url, headers=auth, timeout=30) as http:
        for task_id in ids:
            body = {"task_id": task_id, "prompt": f"fault test {task_id}", "subscriptions": [
                f"patient-webhook:{receiver.url}/f/{task_id}/{c}" for c in range(subs)]}
            while True:
                r = http.post("/v1/tasks", json=body)
                if r.status_code in (200, 201) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert r.status_code in (200, 201), f"{task_id}: HTTP {r.status_code} {r.text}"
    return ids


def roles_of(nodes: list[LocalEngine], api_ingress: LocalEngine | None) -> dict[int, list[str]]:
    """Plain node id -> the roles it holds now, asked of the nodes (one partition here)."""
    leaders = partition_leaders(nodes)
    assert sum(leaders.values()) == 1, f"one partition, one leader: {leaders}"
    roles: dict[int, list[str]] = {node_id(n): [] for n in nodes}
    for plain_id, led in leaders.items():
        if led:
            roles[plain_id].append("partition-leader")
    meta = metadata_leader(nodes)
    assert meta is not None, "the nodes do not agree on a metadata leader"
    roles[meta].append("metadata-leader")
    if api_ingress is not None:
        roles[node_id(api_ingress)].append("api-ingress")
    return roles


def settled_roles(nodes: list[LocalEngine], api_ingress: LocalEngine | None = None,
                  timeout: float = 30) -> dict[int, list[str]]:
    """The roles once the partition has a leader and the nodes agree on a metadata leader."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return roles_of(nodes, api_ingress)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.parametrize("role", ROLES)
def test_cluster_node_killed_by_role(role: str, tmp_path: Path, mailbox: Mailbox,
                                     webhook_receiver: WebhookReceiver) -> None:
    """Kill the node that leads the partition holding the in-flight deliveries, the metadata
    leader, or the node whose ingress the API uses, while 60 deliveries are in flight (the
    receiver refuses them until the kill); the API reaches another node's ingress."""
    config = tmp_path / "gateway.yaml"
    config.write_text(api_config_text(mailbox, webhook_receiver))
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, fail_until=time.time() + 3600).start()
    # one partition, so one node leads every in-flight task; node 1 runs no worker, so that
    # the metadata leader (node 1, which provisions) and the partition leader are different
    cluster = LocalCluster(tmp_path / "cluster", partitions=1, roles={1: NOT_A_WORKER}).start()
    nodes = cluster.nodes
    # the API uses first the ingress of a node that holds none of the roles killed by the
    # other cases, so that each case kills one role where the cluster allows
    held = settled_roles(nodes)
    first = next(n for n in nodes if not held[node_id(n)] or (
        role != "api-ingress" and role not in held[node_id(n)]))
    order = [first, *[n for n in nodes if n is not first]]
    admin = order[1 if role == "api-ingress" else 0].admin_url  # not the role at the start
    gateway = GatewayProcess(config, admin, API_ENV).start()
    api = ApiProcess(config, [n.ingress_url for n in order], admin, API_ENV)
    run = f"role-{uuid.uuid4().hex[:6]}"
    try:
        api.wait_ready()
        submit_through_api(api, receiver, run, tasks=30, subs=2)

        def in_flight() -> bool:  # every task done, every delivery attempted and refused
            attempted = {h.path for h in receiver.requests if h.path.startswith(f"/f/{run}-")}
            states = invocation_states(admin, "on_notify", run + "-")
            return len(attempted) == 60 and sum(states[s] for s in NOT_FINISHED) == 60

        assert wait_until(in_flight, 60, interval=0.5), (
            f"not in flight: {invocation_states(admin, 'on_notify', run + '-')}")
        roles = settled_roles(nodes, api_ingress=first, timeout=15)
        [target] = [n for n in nodes if role in roles[node_id(n)]]
        target_id = node_id(target)
        states = invocation_states(admin, "on_notify", run + "-")
        assert sum(states[s] for s in NOT_FINISHED) == 60, f"not in flight at the kill: {states}"
        assert not unique_deliveries(receiver, run), "delivered before the kill"
        target.kill()
        receiver.fail_until = None  # the channel recovers: the survivors must deliver
        print(f"killed N{target_id} ({', '.join(roles[target_id])}); on_notify states at the "
              f"kill: {dict(states)}; roles: {roles}")

        submit_through_api(api, receiver, run + "-after", tasks=10, subs=2)
        ids = assert_all_delivered_once(receiver, run, 80, timeout=90)
        print(f"duplicates (same webhook-id): {sum(n - 1 for n in ids.values())}")
        survivors = [n for n in nodes if n is not target]
        if role == "partition-leader":
            assert wait_until(lambda: sum(partition_leaders(survivors).values()) == 1, 30)
        if role == "metadata-leader":
            assert wait_until(lambda: metadata_leader(survivors) not in (None, target_id), 30)
        if role == "api-ingress":
            assert any("refused the connection" in line for line in api.lines), api.lines[-20:]
            assert httpx.get(f"{api.url}/readyz", timeout=10).status_code == 200
        with httpx.Client(base_url=api.url, timeout=30,
                          headers={"authorization": f"Bearer {KEYS.reader}"}) as http:
            task = http.get(f"/v1/tasks/{run}-0").json()  # read through a surviving ingress
        assert [d["state"] for d in task["deliveries"]] == ["delivered"] * 2, task
    finally:
        api.stop()
        gateway.stop()
        cluster.stop()
        receiver.stop()
