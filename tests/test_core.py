"""The durable notify-when-ready core against a real restate-server (see conftest)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from gateway.core import DeliveryState, Subscription, TaskRequest, TaskState, UserInputError
from gateway.durable import GatewayClient
from gateway.local import LocalEngine, Mailbox, WebhookReceiver

pytestmark = pytest.mark.restate


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def hook_url(receiver: WebhookReceiver, task_id: str) -> str:
    return f"{receiver.url}/hooks/{task_id}"


def hooks_for(receiver: WebhookReceiver, task_id: str, count: int, timeout: float = 15) -> list:
    receiver.wait_for(len(receiver.items()) + count, 0)  # no-op: keeps types simple
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = [h for h in receiver.delivered() if h.path == f"/hooks/{task_id}"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_early_subscribers_on_two_channels_get_the_result(
    gateway: str, client: GatewayClient, mailbox: Mailbox, webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("early")
    to = f"{task_id}@example.com"
    request = TaskRequest(prompt="Write a poem about queues", labels={"team": "data"},
                          subscriptions=[
                              Subscription.parse(to),
                              Subscription.parse("webhook:" + hook_url(webhook_receiver, task_id)),
                          ])
    assert client.submit(task_id, request).new

    status = client.wait(task_id, timeout=30)
    assert status.state is TaskState.SUCCEEDED
    assert status.output and "Write a poem about queues" in status.output
    assert status.labels == {"team": "data"}
    assert sorted(d.channel for d in status.deliveries) == ["email", "webhook"]
    assert all(d.state is DeliveryState.DELIVERED and d.attempts == 1 for d in status.deliveries)

    [mail] = mailbox.wait_for_recipient(to, 1, timeout=10)
    assert task_id in mail["Subject"]
    [hook] = hooks_for(webhook_receiver, task_id, 1)
    assert hook.verified is True
    body = hook.json()
    assert body["task_id"] == task_id
    assert body["type"] == "task.succeeded"
    assert body["output"] == status.output


def test_late_subscriber_gets_the_stored_result_at_once(
    gateway: str, client: GatewayClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("late")
    client.submit(task_id, TaskRequest(prompt="Summarise the logs"))
    finished = client.wait(task_id, timeout=30)
    assert finished.state is TaskState.SUCCEEDED and finished.deliveries == []

    result = client.subscribe(task_id, "webhook:" + hook_url(webhook_receiver, task_id))
    assert result["subscription_id"].startswith("s_")
    [hook] = hooks_for(webhook_receiver, task_id, 1, timeout=10)
    assert hook.json()["output"] == finished.output
    status = client.wait(task_id, timeout=10)
    [receipt] = status.deliveries
    assert receipt.state is DeliveryState.DELIVERED
    # nothing waited: a late subscriber never shows a "waiting" phase
    assert receipt.delivered_at is not None and receipt.delivered_at >= finished.completed_at


def test_the_same_task_id_twice_runs_once(
    gateway: str, client: GatewayClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("dup")
    hook = Subscription.parse("webhook:" + hook_url(webhook_receiver, task_id))
    request = TaskRequest(prompt="Only once", subscriptions=[hook])
    first = client.submit(task_id, request)
    second = client.submit(task_id, request)
    assert first.new and not second.new
    assert first.invocation_id == second.invocation_id
    client.wait(task_id, timeout=30)
    # the same subscriber again is the same subscription: not told twice
    client.subscribe(task_id, "webhook:" + hook_url(webhook_receiver, task_id))
    hooks = hooks_for(webhook_receiver, task_id, 2, timeout=3)
    assert len(hooks) == 1
    assert len(client.status(task_id).deliveries) == 1


def test_agent_failure_notifies_subscribers_instead_of_leaving_them_waiting(
    gateway: str, client: GatewayClient, webhook_receiver: WebhookReceiver, mailbox: Mailbox
) -> None:
    task_id = new_id("fail")
    to = f"{task_id}@example.com"
    client.submit(task_id, TaskRequest(prompt="This will fail", agent="failing",
                                       subscriptions=[Subscription.parse(to)]))
    client.subscribe(task_id, "webhook:" + hook_url(webhook_receiver, task_id))
    status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.FAILED
    assert status.error and "offline:fail" in status.error
    assert [d.state for d in status.deliveries] == [DeliveryState.DELIVERED] * 2
    assert {d.kind for d in status.deliveries} == {"failure"}
    [hook] = hooks_for(webhook_receiver, task_id, 1)
    assert hook.json()["type"] == "task.failed"
    assert "offline:fail" in hook.json()["error"]
    [mail] = mailbox.wait_for_recipient(to, 1, timeout=10)
    assert "failed" in mail["Subject"].lower()


def test_restate_walkthrough_over_raw_http(
    gateway: str, restate_server: LocalEngine, mailbox: Mailbox
) -> None:
    """Restate's own "notify when ready" walkthrough, unchanged: bare prompt, bare address."""
    key = new_id("msg")
    base = f"{restate_server.ingress_url}/restate/send/AsyncNotificationsAgent/{key}"
    with httpx.Client(timeout=10) as http:
        r = http.post(f"{base}/run", json="Write a poem")
        assert r.status_code in (200, 202), r.text
        r = http.post(f"{base}/on_notify", json=f"{key}@example.com")
        assert r.status_code in (200, 202), r.text
    [mail] = mailbox.wait_for_recipient(f"{key}@example.com", 1, timeout=20)
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None and "Write a poem" in body.get_content()
    # the on_notify sent to the ingress delivered itself: no second invocation per subscriber
    sql = ("SELECT count(*) AS n FROM sys_invocation WHERE target_handler_name = 'on_notify' "
           f"AND target_service_key = '{key}'")
    assert query(restate_server, sql) == [{"n": 1}]


@pytest.mark.parametrize(
    ("subscriber", "message"),
    [
        ('"not an address"', "neither an email address nor CHANNEL:TARGET"),
        ('"slak:#general"', "unknown channel 'slak'"),
        ('"webhook:ftp://example.com/x"', "webhook"),
        ('{"channel": "email"}', "target"),
        ("{not json", "not valid JSON"),
        ("", "body is empty"),
    ],
)
def test_bad_subscriber_is_refused_with_a_4xx_saying_what_is_wrong(
    gateway: str, restate_server: LocalEngine, subscriber: str, message: str
) -> None:
    url = (f"{restate_server.ingress_url}/restate/call/AsyncNotificationsAgent/"
           f"{new_id('bad')}/subscribe")
    headers = {"content-type": "application/json"} if subscriber else {}
    r = httpx.post(url, content=subscriber.encode(), headers=headers, timeout=10)
    assert 400 <= r.status_code < 500, r.text
    assert message in r.json()["message"]


def query(engine: LocalEngine, sql: str) -> list[dict]:
    r = httpx.post(f"{engine.admin_url}/query", json={"query": sql},
                   headers={"accept": "application/json"}, timeout=10)
    r.raise_for_status()
    return r.json()["rows"]


@pytest.mark.parametrize(
    ("body", "message"),
    [(b'"   "', "prompt is empty"), (b"{oops", "not valid JSON"),
     (b'{"prompt": "x", "colour": "red"}', "colour"),
     (b'{"prompt": "x", "agent": "nope"}', "unknown agent 'nope'")],
)
def test_bad_task_fails_terminally_and_nothing_keeps_retrying(
    gateway: str, restate_server: LocalEngine, client: GatewayClient, body: bytes, message: str
) -> None:
    task_id = new_id("badtask")
    url = f"{restate_server.ingress_url}/restate/send/AsyncNotificationsAgent/{task_id}/run"
    r = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code in (200, 202)
    status = client.wait(task_id, timeout=15, deliveries=False)
    assert status.state is TaskState.FAILED
    assert status.error and message in status.error
    rows = query(restate_server, "SELECT status FROM sys_invocation WHERE "
                 f"target_service_key = '{task_id}' AND target_handler_name = 'run'")
    assert [row["status"] for row in rows] == ["completed"]


def test_bad_subscriber_via_the_client_is_a_user_error(gateway: str, client: GatewayClient) -> None:
    with pytest.raises(UserInputError, match="unknown channel 'nope'"):
        client.subscribe(new_id("x"), Subscription(channel="nope", target="x"))


def test_status_of_an_unknown_task(gateway: str, client: GatewayClient) -> None:
    status = client.status(new_id("never"))
    assert status.state is TaskState.UNKNOWN and status.deliveries == []


def test_secret_never_in_status(gateway: str, client: GatewayClient) -> None:
    from tests.conftest import WEBHOOK_SECRET

    task_id = new_id("secret")
    client.submit(task_id, TaskRequest(prompt="hello"))
    client.subscribe(task_id, "webhook:http://127.0.0.1:9/unreachable")
    status = client.wait(task_id, timeout=60)
    assert status.deliveries[0].state is DeliveryState.FAILED
    assert WEBHOOK_SECRET not in json.dumps(status.model_dump(mode="json"))


def test_standing_subscription_matched_by_label_is_delivered(
    gateway: str, client: GatewayClient, webhook_receiver: WebhookReceiver
) -> None:
    """Nobody is named at submit time: the configuration routes team=ml to the ML webhook."""
    task_id = new_id("standing")
    client.submit(task_id, TaskRequest(prompt="Retrain the model", labels={"team": "ml"}))
    client.submit(new_id("other"), TaskRequest(prompt="Not for ML", labels={"team": "ops"}))
    status = client.wait(task_id, timeout=30)
    [receipt] = status.deliveries
    assert receipt.channel == "webhook" and receipt.state is DeliveryState.DELIVERED
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        hooks = [h for h in webhook_receiver.delivered()
                 if h.path == "/hooks/standing-ml" and h.json()["task_id"] == task_id]
        if hooks:
            break
        time.sleep(0.05)
    assert len(hooks) == 1
    others = [h for h in webhook_receiver.delivered()
              if h.path == "/hooks/standing-ml" and h.json()["labels"].get("team") == "ops"]
    assert others == []


def test_deadline_sends_still_running_then_the_result(
    gateway: str, client: GatewayClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("deadline")
    wants_notice = Subscription(channel="webhook", target=hook_url(webhook_receiver, task_id),
                                outcomes=["succeeded", "timed_out"])
    plain = Subscription(channel="webhook", target=hook_url(webhook_receiver, task_id) + "/plain")
    client.submit(task_id, TaskRequest(prompt="Take your time", agent="slow",
                                       subscriptions=[wants_notice, plain]))
    hooks = hooks_for(webhook_receiver, task_id, 2, timeout=30)
    assert [h.json()["type"] for h in hooks] == ["task.still_running", "task.succeeded"]
    assert hooks[0].headers["webhook-id"] != hooks[1].headers["webhook-id"]
    status = client.wait(task_id, timeout=30)
    assert status.state is TaskState.SUCCEEDED
    plain_hooks = [h for h in webhook_receiver.delivered() if h.path.endswith(f"{task_id}/plain")]
    assert [h.json()["type"] for h in plain_hooks] == ["task.succeeded"]


def test_own_subscribers_start_when_the_outcome_is_known(
    gateway: str, restate_server: LocalEngine, client: GatewayClient,
    webhook_receiver: WebhookReceiver
) -> None:
    """While the task runs, only a subscriber owed a still-running notice has an ``on_notify``
    invocation: the others cost nothing until the result is there, then get it once."""
    import time

    task_id = new_id("later")
    wants_notice = Subscription(channel="webhook", target=hook_url(webhook_receiver, task_id),
                                outcomes=["succeeded", "timed_out"])
    plain = Subscription(channel="webhook", target=hook_url(webhook_receiver, task_id) + "/plain")
    client.submit(task_id, TaskRequest(prompt="Take your time", agent="slow",
                                       subscriptions=[wants_notice, plain]))
    sql = ("SELECT status FROM sys_invocation WHERE target_handler_name = 'on_notify' AND "
           f"target_service_key = '{task_id}'")
    deadline = time.monotonic() + 10
    while not (rows := query(restate_server, sql)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.status(task_id).state is TaskState.RUNNING
    assert len(rows) == 1, rows  # the deadline subscriber's, waiting
    done = client.wait(task_id, timeout=30)
    assert [d.state for d in done.deliveries] == [DeliveryState.DELIVERED] * 2
    assert [h.json()["type"] for h in hooks_for(webhook_receiver, task_id + "/plain", 1)] == [
        "task.succeeded"]
    # each records its final receipt (a one-way call) just before its invocation ends
    deadline = time.monotonic() + 10
    while (statuses := [row["status"] for row in query(restate_server, sql)]) != [
            "completed"] * 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert statuses == ["completed"] * 2


def test_agent_timeout_fails_the_task_and_tells_subscribers(
    gateway: str, client: GatewayClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("timeout")
    client.submit(task_id, TaskRequest(prompt="Never ends", agent="hanging", subscriptions=[
        Subscription.parse("webhook:" + hook_url(webhook_receiver, task_id))]))
    status = client.wait(task_id, timeout=20)
    assert status.state is TaskState.FAILED
    assert status.error and "did not finish within its timeout of 1s" in status.error
    assert status.completed_at and status.submitted_at
    assert status.completed_at - status.submitted_at < 10  # cut short, not retried 5 times
    [hook] = hooks_for(webhook_receiver, task_id, 1)
    assert hook.json()["type"] == "task.failed"


def test_status_shows_subscribers_waiting_while_the_agent_runs(
    gateway: str, client: GatewayClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("waiting")
    client.submit(task_id, TaskRequest(prompt="Take a while", agent="slow", subscriptions=[
        Subscription.parse("webhook:" + hook_url(webhook_receiver, task_id)),
        Subscription.parse(f"{task_id}@example.com")]))
    client.subscribe(task_id, "webhook:" + hook_url(webhook_receiver, task_id) + "/late")
    import time

    deadline = time.monotonic() + 10
    status = client.status(task_id)
    while len(status.deliveries) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        status = client.status(task_id)
    assert status.state is TaskState.RUNNING
    assert [d.state for d in status.deliveries] == [DeliveryState.WAITING] * 3
    assert {d.channel for d in status.deliveries} == {"webhook", "email"}
    done = client.wait(task_id, timeout=30)
    assert [d.state for d in done.deliveries] == [DeliveryState.DELIVERED] * 3
