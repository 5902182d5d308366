"""At ``info`` a task tells its story: one line per state change and per delivery outcome,
Apprise's own lines in the task's context with the address masked - once each, also when
the server replays every handler at every step (the always-replay engine mode)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.local.sinks import Mailbox, WebhookReceiver
from tests.api.helpers import finished, new_id, poll
from tests.conftest import WEBHOOK_SECRET
from tests.observability.conftest import Traced

pytestmark = pytest.mark.restate


def _lines(traced: Traced, task_id: str) -> list[dict[str, Any]]:
    out = []
    for line in traced.log_lines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("task_id") == task_id:
            out.append(record)
    return out


def _story(traced: Traced, task_id: str, deliveries: int,
           timeout: float = 15) -> list[dict[str, Any]]:
    """The task's log lines, once every delivery has logged its end."""
    deadline = time.monotonic() + timeout
    while True:
        lines = _lines(traced, task_id)
        ended = sum(1 for r in lines if r["event"] == "delivery finished")
        if ended >= deliveries or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _events(lines: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(r["event"]) for r in lines)


def test_a_task_logs_each_state_change_and_delivery_once_with_apprise_masked(
        traced: Traced, mailbox: Mailbox, webhook_receiver: WebhookReceiver) -> None:
    task_id = new_id("story")
    address = f"{task_id}@example.com"
    hook = f"{webhook_receiver.url}/hooks/{task_id}"
    r = traced.http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Tell the story",
                                            "subscriptions": [address, f"webhook:{hook}"]})
    assert r.status_code == 201, r.text
    status = poll(traced.http, task_id, finished, timeout=60)
    assert [d["state"] for d in status["deliveries"]] == ["delivered", "delivered"], status
    subs = {d["channel"]: d["subscription_id"] for d in status["deliveries"]}
    lines = _story(traced, task_id, deliveries=2)
    events = _events(lines)

    # the task's state changes, once each, in order
    story = [r["event"] for r in lines if r["logger"] == "gateway.task"]
    assert story == ["task accepted", "agent started", "task succeeded"], lines
    accepted = next(r for r in lines if r["event"] == "task accepted")
    assert accepted["level"] == "info" and accepted["agent"] == "default"
    assert accepted["subscriptions"] == 2
    succeeded = next(r for r in lines if r["event"] == "task succeeded")
    assert succeeded["outcome"] == "succeeded" and succeeded["duration_s"] >= 0

    # one line per delivery attempt and per delivery outcome, naming task, subscription,
    # channel, attempt, latency and the provider's status
    assert events["delivery attempt"] == 2 and events["delivery finished"] == 2, events
    for channel, sub in subs.items():
        [attempt] = [r for r in lines if r["event"] == "delivery attempt"
                     and r["subscription"] == sub]
        assert attempt["channel"] == channel and attempt["attempt"] == 1
        assert attempt["outcome"] == "delivered" and attempt["level"] == "info"
        assert attempt["latency_s"] >= 0 and attempt["elapsed_ms"] >= 0
        assert attempt["span_id"] and attempt["trace_id"]
        [end] = [r for r in lines if r["event"] == "delivery finished"
                 and r["subscription"] == sub]
        assert end["state"] == "delivered" and end["channel_used"] == channel
        assert end["attempts"] == 1 and end["latency_s"] == attempt["latency_s"]
    webhook_attempt = next(r for r in lines if r["event"] == "delivery attempt"
                           and r["channel"] == "webhook")
    assert webhook_attempt["provider_status"] == 200

    # Apprise's own line, in the delivery's context, the address masked
    [sent] = [r for r in lines if r["logger"].startswith("apprise")
              and str(r["event"]).startswith("Sent Email")]
    assert sent["event"] == f"Sent Email to {task_id[0]}***@example.com", sent
    assert sent["subscription"] == subs["email"] and sent["channel"] == "email"
    assert sent["invocation_id"].startswith("inv_")
    # the address itself is in no line at all
    assert not [line for line in traced.log_lines() if address in line]


def test_a_failed_and_a_timed_out_task_each_log_their_end_once(traced: Traced) -> None:
    failing, hanging = new_id("story-failing"), new_id("story-hanging")
    for task_id, agent in ((failing, "failing"), (hanging, "hanging")):
        r = traced.http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Try",
                                                "agent": agent})
        assert r.status_code == 201, r.text
    for task_id in (failing, hanging):
        status = poll(traced.http, task_id, finished, timeout=60)
        assert status["state"] == "failed", status
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ends = [r for t in (failing, hanging) for r in _lines(traced, t)
                if r["event"] in ("task failed", "task timed out")]
        if len(ends) >= 2:
            break
        time.sleep(0.05)
    failed, timed_out = _lines(traced, failing), _lines(traced, hanging)
    assert [r["event"] for r in failed if r["logger"] == "gateway.task"] == [
        "task accepted", "agent started", "task failed"], failed
    assert [r["event"] for r in timed_out if r["logger"] == "gateway.task"] == [
        "task accepted", "agent started", "task timed out"], timed_out
    end = next(r for r in timed_out if r["event"] == "task timed out")
    assert end["level"] == "warning" and end["outcome"] == "timed_out"
    assert "timeout" in end["error"] and end["duration_s"] >= 1
    end = next(r for r in failed if r["event"] == "task failed")
    assert end["level"] == "warning" and end["agent"] == "failing" and end["error"]


@pytest.fixture(scope="module")
def refusing() -> Iterator[WebhookReceiver]:
    """A webhook receiver that refuses every message (400: permanent, no retry)."""
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[400] * 100).start()
    yield receiver
    receiver.stop()


def test_a_refused_attempt_is_a_warning_and_the_fallback_delivery_its_end(
        traced: Traced, refusing: WebhookReceiver, mailbox: Mailbox) -> None:
    task_id = new_id("story-fallback")
    subscriber = {"channel": "webhook", "target": f"{refusing.url}/hooks/{task_id}",
                  "fallback": [{"channel": "email", "target": f"{task_id}@example.com"}]}
    r = traced.http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Fall back",
                                            "subscriptions": [subscriber]})
    assert r.status_code == 201, r.text
    status = poll(traced.http, task_id, finished, timeout=60)
    [delivery] = status["deliveries"]
    assert delivery["state"] == "delivered-by-fallback", status
    lines = _story(traced, task_id, deliveries=1)
    attempts = [r for r in lines if r["event"] == "delivery attempt"]
    assert [(r["channel"], r["outcome"], r["level"]) for r in attempts] == [
        ("webhook", "permanent", "warning"), ("email", "delivered", "info")], attempts
    assert attempts[0]["provider_status"] == 400 and "latency_s" not in attempts[0]
    assert all(r["subscription"] == delivery["subscription_id"] for r in attempts)
    [end] = [r for r in lines if r["event"] == "delivery finished"]
    assert end["state"] == "delivered-by-fallback" and end["channel"] == "webhook"
    assert end["channel_used"] == "email" and end["attempts"] == 2 and end["latency_s"] >= 0
