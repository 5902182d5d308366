"""Nothing fails silently: repeat submits, subscribers sent straight to the ingress (good, bad,
twice), the status before a task runs, and attempt history - against the real server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli.app import app
from gateway.core import (
    DeliveryState,
    Subscription,
    TaskRequest,
    TaskState,
    TaskStatus,
    UserInputError,
)
from gateway.durable import GatewayClient
from gateway.local import LocalEngine, Mailbox, WebhookReceiver
from tests.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.restate

runner = CliRunner()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def send_notify(engine: LocalEngine, task_id: str, body: object) -> httpx.Response:
    """A subscriber sent straight to the ingress, as Restate's walkthrough does (no key)."""
    url = f"{engine.ingress_url}/restate/send/AsyncNotificationsAgent/{task_id}/on_notify"
    return httpx.post(url, json=body, timeout=10)


def status_until(client: GatewayClient, task_id: str, done: object, timeout: float = 30
                 ) -> TaskStatus:
    assert callable(done)
    deadline = time.monotonic() + timeout
    status = client.status(task_id)
    while not done(status) and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.status(task_id)
    return status


def cli(*args: str, engine: LocalEngine) -> tuple[int, str]:
    r = runner.invoke(app, [*args, "--ingress-url", engine.ingress_url],
                      env={"COLUMNS": "250"})
    return r.exit_code, r.output


# --- 1. a repeat submit adds its new subscribers ------------------------------------------


def test_a_repeat_submit_subscribes_its_new_subscribers(
    gateway: str, restate_server: LocalEngine, mailbox: Mailbox, client: GatewayClient
) -> None:
    task_id = new_id("dup")
    first, second = f"{task_id}-1@example.com", f"{task_id}-2@example.com"
    code, out = cli("submit", "Write a poem", "--task-id", task_id, "--notify", first,
                    "--wait", "--timeout", "60", engine=restate_server)
    assert code == 0, out

    code, out = cli("submit", "Write a poem", "--task-id", task_id, "--notify", first,
                    "--notify", second, engine=restate_server)
    assert code == 0, out
    assert "submitted before" in out and "1 new subscriber added" in out
    assert len(mailbox.wait_for_recipient(second, 1, 20)) == 1  # told the stored result

    code, out = cli("submit", "Write a poem", "--task-id", task_id, "--notify", first,
                    "--notify", second, engine=restate_server)
    assert code == 0 and "no new subscribers" in out, out
    status = client.wait(task_id, 30)
    assert len(status.deliveries) == 2
    assert all(d.state is DeliveryState.DELIVERED for d in status.deliveries)
    assert len(mailbox.for_recipient(first)) == 1 and len(mailbox.for_recipient(second)) == 1


def test_a_repeat_while_the_task_runs_adds_only_who_is_new(
    gateway: str, client: GatewayClient, mailbox: Mailbox
) -> None:
    task_id = new_id("duprun")
    first, second = f"{task_id}-1@example.com", f"{task_id}-2@example.com"
    request = TaskRequest(prompt="Take your time", agent="slow",
                          subscriptions=[Subscription.parse(first)])
    assert client.submit(task_id, request).new
    repeat = request.model_copy(update={"subscriptions": [Subscription.parse(first),
                                                          Subscription.parse(second)]})
    again = client.submit(task_id, repeat)  # at once: the run may not have started yet
    assert not again.new and again.added == 1
    status = client.wait(task_id, 60)
    assert status.state is TaskState.SUCCEEDED
    assert len(status.deliveries) == 2
    assert len(mailbox.wait_for_recipient(second, 1, 10)) == 1
    assert len(mailbox.wait_for_recipient(first, 1, 10)) == 1


# --- 2. a bad subscriber sent to the ingress is recorded, with the reason -----------------


def test_a_bad_subscriber_sent_to_the_ingress_shows_in_the_status(
    gateway: str, restate_server: LocalEngine, client: GatewayClient
) -> None:
    task_id = new_id("bad")
    secret = "tok3n-" + uuid.uuid4().hex
    assert send_notify(restate_server, task_id, "not-an-address").status_code == 202
    bad_channel = {"channel": "nope", "target": f"https://h.example.com/x?token={secret}"}
    assert send_notify(restate_server, task_id, bad_channel).status_code == 202
    url = f"{restate_server.ingress_url}/restate/send/AsyncNotificationsAgent/{task_id}/on_notify"
    not_json = httpx.post(url, content=b"{not json", timeout=10,
                          headers={"content-type": "application/json"})
    assert not_json.status_code == 202

    status = status_until(client, task_id, lambda s: len(s.deliveries) == 3)
    assert [d.state for d in status.deliveries] == [DeliveryState.REJECTED] * 3
    assert status.state is TaskState.NOT_STARTED
    reasons = {d.target: d.last_error or "" for d in status.deliveries}
    assert "neither an email address nor CHANNEL:TARGET" in reasons["not***"]
    assert "unknown channel 'nope'" in reasons["htt***"]
    assert "not valid JSON" in reasons["{no***"]

    code, out = cli("status", task_id, engine=restate_server)
    assert code == 0, out
    assert "not started; 3 subscribers rejected" in out
    assert out.count("rejected") >= 4 and "unknown channel 'nope'" in out
    code, out = cli("status", task_id, "--json", engine=restate_server)
    doc = json.loads(out)
    assert code == 0 and doc["state"] == "not-started"
    assert [d["state"] for d in doc["deliveries"]] == ["rejected"] * 3
    assert secret not in out and "not-an-address" not in out

    # the same bad subscriber again is the same rejection, not a second one
    assert send_notify(restate_server, task_id, "not-an-address").status_code == 202
    time.sleep(1)
    assert len(client.status(task_id).deliveries) == 3


# --- 3. before the task runs, plain and --json status agree -------------------------------


def test_status_before_the_run_agrees_in_plain_and_json(
    gateway: str, restate_server: LocalEngine, client: GatewayClient, mailbox: Mailbox
) -> None:
    task_id = new_id("early")
    to = f"{task_id}@example.com"
    assert send_notify(restate_server, task_id, to).status_code == 202
    status_until(client, task_id, lambda s: len(s.deliveries) == 1)

    code, out = cli("status", task_id, engine=restate_server)
    assert code == 0, out
    assert "not started; 1 subscriber waiting" in out and "no task" not in out
    code, out = cli("status", task_id, "--json", engine=restate_server)
    doc = json.loads(out)
    assert code == 0 and doc["state"] == "not-started"
    assert [d["state"] for d in doc["deliveries"]] == ["waiting"]

    code, out = cli("status", new_id("nothing"), engine=restate_server)
    assert code == 1 and "no task" in out

    client.submit(task_id, TaskRequest(prompt="Now run"))
    assert client.wait(task_id, 30).state is TaskState.SUCCEEDED
    assert len(mailbox.wait_for_recipient(to, 1, 10)) == 1


# --- 4. attempts are history, not the current state ---------------------------------------


@pytest.fixture
def flaky_once() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[503]).start()
    yield receiver
    receiver.stop()


def test_a_delivered_receipt_keeps_earlier_attempts_as_history(
    gateway: str, restate_server: LocalEngine, client: GatewayClient,
    flaky_once: WebhookReceiver
) -> None:
    task_id = new_id("hist")
    client.submit(task_id, TaskRequest(prompt="Second time lucky", subscriptions=[
        Subscription.parse(f"webhook:{flaky_once.url}/hooks/{task_id}")]))
    [receipt] = client.wait(task_id, 30).deliveries
    assert receipt.state is DeliveryState.DELIVERED and receipt.attempts == 2
    assert receipt.last_error is None  # delivered: no current error
    assert [(h.number, h.outcome) for h in receipt.history] == [(1, "failed"),
                                                                (2, "delivered")]
    assert receipt.history[0].error and "503" in receipt.history[0].error
    assert receipt.history[0].channel == "webhook" and receipt.history[0].at

    code, out = cli("status", task_id, engine=restate_server)
    assert code == 0, out
    assert "delivered (attempt 2; attempt 1 failed: webhook:" in out and "503" in out


# --- 5. the same subscriber is one subscription everywhere --------------------------------


def test_the_same_on_notify_body_twice_sends_one_email(
    gateway: str, restate_server: LocalEngine, client: GatewayClient, mailbox: Mailbox
) -> None:
    task_id = new_id("twice")
    to = f"{task_id}@example.com"
    assert send_notify(restate_server, task_id, to).status_code == 202
    assert send_notify(restate_server, task_id, to).status_code == 202
    assert send_notify(restate_server, task_id, {"channel": "email", "target": to}
                       ).status_code == 202
    subscribed = client.subscribe(task_id, to)
    client.submit(task_id, TaskRequest(prompt="Once only", subscriptions=[
        Subscription.parse(to)]))
    status = client.wait(task_id, 30)
    assert [d.subscription_id for d in status.deliveries] == [subscribed["subscription_id"]]
    assert status.deliveries[0].state is DeliveryState.DELIVERED
    assert len(mailbox.wait_for_recipient(to, 1, 10)) == 1
    time.sleep(1.5)  # a second message would have arrived by now
    assert len(mailbox.for_recipient(to)) == 1


# --- 6. cancel from the command line --------------------------------------------------------


def test_gateway_cancel_stops_a_waiting_subscriber_and_refuses_a_delivered_one(
    gateway: str, restate_server: LocalEngine, mailbox: Mailbox, client: GatewayClient
) -> None:
    task_id = new_id("cancel-cli")
    waiting, told = f"{task_id}-w@example.com", f"{task_id}-t@example.com"
    client.submit(task_id, TaskRequest(prompt="Slowly", agent="slow", subscriptions=[
        Subscription.parse(waiting), Subscription.parse(told)]))
    status = status_until(client, task_id, lambda s: len(s.deliveries) == 2)
    by_target = {r.address or r.target: r.subscription_id for r in status.deliveries}
    code, output = cli("cancel", task_id, by_target[waiting], engine=restate_server)
    assert code == 0, output
    assert f"cancelled subscription {by_target[waiting]} of task {task_id}" in output
    done = status_until(client, task_id, lambda s: all(r.state.final for r in s.deliveries))
    states = {r.subscription_id: r.state for r in done.deliveries}
    assert states == {by_target[waiting]: DeliveryState.CANCELLED,
                      by_target[told]: DeliveryState.DELIVERED}
    assert mailbox.for_recipient(waiting) == []  # nothing sent after the cancel
    # refusals are UserInputError: `gateway` prints them in one line and exits 2
    refused = runner.invoke(app, ["cancel", task_id, by_target[told], "--ingress-url",
                                  restate_server.ingress_url])
    assert isinstance(refused.exception, UserInputError)
    assert "is already delivered: there is nothing to cancel" in str(refused.exception)
    unknown = runner.invoke(app, ["cancel", task_id, "s_0000000000000000", "--ingress-url",
                                  restate_server.ingress_url])
    assert isinstance(unknown.exception, UserInputError)
    assert "has no subscription 's_0000000000000000'" in str(unknown.exception)
