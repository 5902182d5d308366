"""Delivery semantics end to end: retries, Retry-After, fallback, receipts, third-party plugins."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core import DeliveryState, Subscription, Target, TaskRequest, TaskState
from gateway.durable import GatewayClient
from gateway.local import Mailbox, WebhookReceiver
from tests.conftest import TEST_ENV, WEBHOOK_SECRET, new_engine
from tests.fixtures.echo_plugin import install_echo_plugin
from tests.support.process import GatewayProcess, wait_until

pytestmark = pytest.mark.restate


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def flaky() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[503, 503]).start()
    yield receiver
    receiver.stop()


def test_transient_failures_are_retried_with_the_same_webhook_id(
    gateway: str, client: GatewayClient, flaky: WebhookReceiver
) -> None:
    task_id = new_id("flaky")
    client.submit(task_id, TaskRequest(prompt="Be patient", subscriptions=[
        Subscription.parse(f"webhook:{flaky.url}/hooks/{task_id}")]))
    status = client.wait(task_id, timeout=30)
    [receipt] = status.deliveries
    assert receipt.state is DeliveryState.DELIVERED
    assert receipt.attempts == 3
    assert receipt.last_error is None or "503" in receipt.last_error
    ids = {r.headers["webhook-id"] for r in flaky.requests}
    assert len(flaky.requests) == 3 and len(ids) == 1  # one message, retried
    assert len(flaky.delivered()) == 1


def test_retry_after_is_honoured(gateway: str, client: GatewayClient) -> None:
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[429], retry_after=1.5).start()
    try:
        task_id = new_id("429")
        client.submit(task_id, TaskRequest(prompt="Slow down", subscriptions=[
            Subscription.parse(f"webhook:{receiver.url}/hooks/{task_id}")]))
        status = client.wait(task_id, timeout=30)
        assert status.deliveries[0].state is DeliveryState.DELIVERED
        first, second = receiver.requests
        assert second.received_at - first.received_at >= 1.4
    finally:
        receiver.stop()


def test_permanent_failure_falls_back_and_the_receipt_says_so(
    gateway: str, client: GatewayClient, mailbox: Mailbox
) -> None:
    refusing = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[400] * 5).start()
    try:
        task_id = new_id("fallback")
        to = f"{task_id}@example.com"
        sub = Subscription(channel="webhook", target=f"{refusing.url}/hooks/{task_id}",
                           fallback=[Target(channel="email", target=to)])
        client.submit(task_id, TaskRequest(prompt="Find another way", subscriptions=[sub]))
        status = client.wait(task_id, timeout=30)
        [receipt] = status.deliveries
        assert receipt.state is DeliveryState.DELIVERED_BY_FALLBACK
        assert receipt.channel == "webhook" and receipt.channel_used == "email"
        assert receipt.attempts == 2  # a 400 is not retried: one webhook try, one email
        assert receipt.last_error is None  # delivered: the webhook's 400 is history
        first, second = receipt.history
        assert (first.channel, first.outcome) == ("webhook", "failed")
        assert first.error and "400" in first.error
        assert (second.channel, second.outcome) == ("email", "delivered")
        assert len(refusing.requests) == 1
        assert len(mailbox.wait_for_recipient(to, 1, 10)) == 1
    finally:
        refusing.stop()


def test_every_channel_failing_ends_failed_with_the_last_error(
    gateway: str, client: GatewayClient
) -> None:
    refusing = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[500] * 10).start()
    try:
        task_id = new_id("allfail")
        client.submit(task_id, TaskRequest(prompt="No luck", subscriptions=[
            Subscription.parse(f"webhook:{refusing.url}/hooks/{task_id}")]))
        status = client.wait(task_id, timeout=30)
        [receipt] = status.deliveries
        assert receipt.state is DeliveryState.FAILED
        assert receipt.attempts == 3 and len(refusing.requests) == 3
        assert receipt.last_error and "500" in receipt.last_error
        assert WEBHOOK_SECRET not in json.dumps(status.model_dump(mode="json"))
    finally:
        refusing.stop()


@pytest.fixture(scope="module")
def echo_site() -> Iterator[Path]:
    site = Path(tempfile.mkdtemp(prefix="echo-plugin-"))
    install_echo_plugin(site)
    yield site
    shutil.rmtree(site, ignore_errors=True)


def test_a_third_party_plugin_delivers_without_gateway_changes(
    echo_site: Path, tmp_path: Path, config_file: Path
) -> None:
    """Install a plugin package, name its channel in a subscription: it delivers."""
    path = os.pathsep.join([str(echo_site), os.environ.get("PYTHONPATH", "")])
    env = {**TEST_ENV, "PYTHONPATH": path}
    listing = subprocess.run([sys.executable, "-m", "gateway", "channels"], capture_output=True,
                             text=True, env={**os.environ, **env, "COLUMNS": "200"}, timeout=60)
    assert "echo" in listing.stdout and "gateway-channel-echo" in listing.stdout

    # a third-party channel is open to callers (here: the Restate ingress) once the YAML
    # file's api.channels names it
    config = tmp_path / "gateway.yaml"
    config.write_text(config_file.read_text() + "api:\n  channels: [email, webhook, echo]\n")
    engine = new_engine(tmp_path / "restate")
    engine.start()
    proc = GatewayProcess(config, engine.admin_url, env)
    try:
        proc.start()
        out = tmp_path / "echo.jsonl"
        task_id = new_id("echo")
        with GatewayClient(engine.ingress_url) as client:
            client.submit(task_id, TaskRequest(prompt="Hello plugins", subscriptions=[
                Subscription.parse(f"echo:{out}")]))
            status = client.wait(task_id, timeout=60)
        assert status.state is TaskState.SUCCEEDED
        assert [d.state for d in status.deliveries] == [DeliveryState.DELIVERED]
        assert wait_until(out.exists, 5)
        [line] = out.read_text().splitlines()
        record = json.loads(line)
        assert task_id in json.dumps(record)
        # the plugin's own message format, rendered by the gateway from its default template
        assert record["data"] == {"summary": f"result of {task_id} for {out}"}
    finally:
        proc.stop()
        engine.stop()
