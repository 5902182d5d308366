"""One task, one trace: the API request, run, the agent, the promise, every on_notify with its
wait, rendering, attempts and fallback - once each, also when every step is replayed - and
log lines that carry the ids of the span they were written in."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from gateway.local import Mailbox, WebhookReceiver
from gateway.observability import trace as _trace
from tests.api.conftest import GITHUB_SECRET, HOOK_SECRET, KEYS
from tests.api.helpers import body_of, finished, new_id, poll, standard_headers
from tests.conftest import WEBHOOK_SECRET
from tests.observability.conftest import Traced, attrs

pytestmark = pytest.mark.restate


@pytest.fixture(scope="module")
def refusing() -> Iterator[WebhookReceiver]:
    """A webhook receiver that refuses every message (400: permanent, no retry)."""
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[400] * 100).start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def task(traced: Traced, refusing: WebhookReceiver, webhook_receiver: WebhookReceiver,
         mailbox: Mailbox) -> dict[str, Any]:
    """A task with two subscribers - a webhook that refuses, falling back to email, and a
    webhook that accepts - submitted through the API; its final status and spans."""
    task_id = new_id("traced")
    body = {"task_id": task_id, "prompt": "Summarise the quarterly numbers", "subscriptions": [
        {"channel": "webhook", "target": f"{refusing.url}/hooks/{task_id}",
         "fallback": [{"channel": "email", "target": f"{task_id}@example.com"}]},
        {"channel": "webhook", "target": f"{webhook_receiver.url}/hooks/{task_id}"},
    ]}
    r = traced.http.post("/v1/tasks", json=body)
    assert r.status_code == 201, r.text
    status = poll(traced.http, task_id, finished, timeout=60)
    assert sorted(d["state"] for d in status["deliveries"]) == [
        "delivered", "delivered-by-fallback"], status

    def both_notified(spans: list[ReadableSpan]) -> bool:
        return sum(1 for s in spans if s.name == "AsyncNotificationsAgent/on_notify"
                   and attrs(s).get("gateway.task.id") == task_id) >= 2

    traced.wait_spans(both_notified)
    server = next(s for s in traced.spans.get_finished_spans()
                  if s.name == "POST /v1/tasks" and s.kind is SpanKind.SERVER
                  and _accepted_child(traced, s, task_id))
    trace_id = server.context.trace_id
    spans = [s for s in traced.spans.get_finished_spans() if s.context.trace_id == trace_id]
    return {"task_id": task_id, "status": status, "spans": spans, "server": server,
            "refused": f"{refusing.url}/hooks/{task_id}"}


def _accepted_child(traced: Traced, server: ReadableSpan, task_id: str) -> bool:
    return any(s.name == "accept task" and s.parent is not None
               and s.parent.span_id == server.context.span_id
               and attrs(s).get("gateway.task.id") == task_id
               for s in traced.spans.get_finished_spans())


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None
            and s.parent.span_id == parent.context.span_id]


def _one(spans: list[ReadableSpan], name: str, **where: Any) -> ReadableSpan:
    found = [s for s in spans if s.name == name
             and all(attrs(s).get(k) == v for k, v in where.items())]
    assert len(found) == 1, (name, where, [(s.name, attrs(s)) for s in spans])
    return found[0]


def test_the_task_is_one_trace_and_every_span_has_its_parent_in_it(
        traced: Traced, task: dict[str, Any]) -> None:
    spans: list[ReadableSpan] = task["spans"]
    ids = {s.context.span_id for s in spans}
    roots = [s for s in spans if s.parent is None]
    assert roots == [task["server"]]
    assert all(s.parent.span_id in ids for s in spans if s.parent is not None)
    # nothing about this task went to another trace
    elsewhere = [s for s in traced.spans.get_finished_spans()
                 if attrs(s).get("gateway.task.id") == task["task_id"]
                 and s.context.trace_id != task["server"].context.trace_id]
    assert elsewhere == []


def test_the_span_tree_of_a_task_with_a_fallback(task: dict[str, Any]) -> None:
    spans: list[ReadableSpan] = task["spans"]
    task_id = task["task_id"]
    server = task["server"]
    assert attrs(server)["http.route"] == "/v1/tasks"
    assert attrs(server)["http.response.status_code"] == 201

    accepted = _one(_children(spans, server), "accept task")
    assert attrs(accepted)["gateway.task.id"] == task_id
    assert attrs(accepted)["gateway.task.created"] is True
    assert attrs(accepted)["gateway.subscription.count"] == 2

    run = _one(_children(spans, accepted), "AsyncNotificationsAgent/run")
    assert run.kind is SpanKind.SERVER
    assert attrs(run)["gateway.task.outcome"] == "succeeded"
    assert attrs(run)["rpc.system"] == "restate"
    under_run = _children(spans, run)
    _one(under_run, "route")
    _one(under_run, "promise resolved", **{"gateway.task.outcome": "succeeded"})
    [agent] = [s for s in under_run if attrs(s).get("gen_ai.agent.name") == "default"
               and s.name != "route"]
    model_calls = [s for s in _children(spans, agent) if s.name.startswith("chat")]
    assert len(model_calls) == 1, [s.name for s in _children(spans, agent)]

    notifies = [s for s in under_run if s.name == "AsyncNotificationsAgent/on_notify"]
    assert len(notifies) == 2
    by_state = {attrs(n)["gateway.delivery.state"]: n for n in notifies}
    assert set(by_state) == {"delivered", "delivered-by-fallback"}

    fell_back = _children(spans, by_state["delivered-by-fallback"])
    names = Counter(s.name for s in fell_back)
    assert names == Counter({"wait for result": 1, "render": 2, "deliver webhook": 1,
                             "fallback": 1, "deliver email": 1}), names
    refused = _one(fell_back, "deliver webhook")
    assert refused.kind is SpanKind.CLIENT
    assert attrs(refused)["gateway.delivery.attempt"] == 1
    assert attrs(refused)["gateway.delivery.outcome"] == "permanent"
    assert attrs(refused)["http.response.status_code"] == 400
    assert refused.status.status_code is StatusCode.ERROR
    fallback = _one(fell_back, "fallback")
    assert attrs(fallback)["gateway.fallback.from"] == "webhook"
    assert attrs(fallback)["gateway.fallback.to"] == "email"
    mailed = _one(fell_back, "deliver email")
    assert attrs(mailed)["gateway.delivery.outcome"] == "delivered"
    assert attrs(mailed)["gateway.delivery.attempt"] == 1
    assert refused.end_time <= fallback.start_time <= mailed.start_time
    assert {attrs(s)["gateway.channel"] for s in fell_back if s.name == "render"} == {
        "webhook", "email"}

    direct = _children(spans, by_state["delivered"])
    assert Counter(s.name for s in direct) == Counter(
        {"wait for result": 1, "render": 1, "deliver webhook": 1})
    sent = _one(direct, "deliver webhook")
    assert attrs(sent)["gateway.delivery.outcome"] == "delivered"
    assert attrs(sent)["http.response.status_code"] == 200
    wait = _one(direct, "wait for result")
    assert wait.start_time <= wait.end_time


def test_no_bodies_or_addresses_in_span_attributes(task: dict[str, Any]) -> None:
    values = [str(v) for s in task["spans"] for v in attrs(s).values()]
    for forbidden in ("Summarise the quarterly numbers", "@example.com", task["refused"],
                      "/hooks/"):
        assert not [v for v in values if forbidden in v], forbidden


def test_log_lines_carry_the_ids_of_the_span_they_were_written_in(
        traced: Traced, task: dict[str, Any]) -> None:
    spans: list[ReadableSpan] = task["spans"]
    by_id = {f"{s.context.span_id:016x}": s for s in spans}
    trace_id = f"{task['server'].context.trace_id:032x}"
    lines = [json.loads(line) for line in traced.log_lines()]
    mine = [line for line in lines if line.get("trace_id") == trace_id]
    # the API's line, in its request span
    [started] = [line for line in mine if line["event"].startswith(f"task {task['task_id']}")]
    assert by_id[started["span_id"]].name == "POST /v1/tasks"
    # the handler's line about the refusing webhook, in its on_notify span, with its context
    [gave_up] = [line for line in mine if "gave up" in line["event"]]
    span = by_id[gave_up["span_id"]]
    assert span.name == "AsyncNotificationsAgent/on_notify"
    assert attrs(span)["gateway.delivery.state"] == "delivered-by-fallback"
    assert gave_up["task_id"] == task["task_id"]
    assert gave_up["subscription"] == attrs(span)["gateway.subscription.id"]
    assert gave_up["channel"] == "webhook"
    assert gave_up["level"] == "warning"
    assert gave_up["logger"] == "gateway.workflow"


def test_an_inbound_hook_starts_the_trace_of_its_task(traced: Traced) -> None:
    delivery = new_id("msg")
    body = body_of({"order": {"id": "A-17"}, "customer": "ACME"})
    r = traced.http.post("/v1/hooks/orders", content=body,
                         headers=standard_headers(body, delivery))
    assert r.status_code == 201, r.text
    task_id = r.json()["task_id"]

    def ran(spans: list[ReadableSpan]) -> bool:
        return any(s.name == "AsyncNotificationsAgent/run"
                   and attrs(s).get("gateway.task.id") == task_id for s in spans)

    spans = traced.wait_spans(ran)
    run = next(s for s in spans if s.name == "AsyncNotificationsAgent/run"
               and attrs(s).get("gateway.task.id") == task_id)
    accepted = next(s for s in spans if s.context.span_id == run.parent.span_id)
    assert accepted.name == "accept task"
    assert attrs(accepted)["gateway.hook.source"] == "orders"
    server = next(s for s in spans if s.context.span_id == accepted.parent.span_id)
    assert server.name == "POST /v1/hooks/{source}"
    assert server.parent is None and server.context.trace_id == run.context.trace_id


def test_a_later_subscriber_joins_the_tasks_trace_and_links_its_request(
        traced: Traced, task: dict[str, Any], webhook_receiver: WebhookReceiver) -> None:
    task_id = task["task_id"]
    r = traced.http.post(f"/v1/tasks/{task_id}/subscriptions",
                         json={"channel": "webhook",
                               "target": f"{webhook_receiver.url}/hooks/{task_id}/late"})
    assert r.status_code == 201, r.text
    sid = r.json()["subscription_id"]

    def notified(spans: list[ReadableSpan]) -> bool:
        return any(s.name == "AsyncNotificationsAgent/on_notify"
                   and attrs(s).get("gateway.subscription.id") == sid for s in spans)

    spans = traced.wait_spans(notified)
    notify = next(s for s in spans if s.name == "AsyncNotificationsAgent/on_notify"
                  and attrs(s).get("gateway.subscription.id") == sid)
    run = next(s for s in task["spans"] if s.name == "AsyncNotificationsAgent/run")
    assert notify.context.trace_id == run.context.trace_id
    assert notify.parent is not None and notify.parent.span_id == run.context.span_id
    assert attrs(notify)["gateway.delivery.state"] == "delivered"
    [link] = [link for link in notify.links
              if (link.attributes or {}).get("gateway.link") == "subscribed by"]
    request = next(s for s in spans if s.context.span_id == link.context.span_id)
    assert request.name == "POST /v1/tasks/{task_id}/subscriptions"
    assert request.context.trace_id != run.context.trace_id


def test_no_configured_secret_in_any_log_line_span_or_receipt(
        traced: Traced, task: dict[str, Any]) -> None:
    """Runs last: scans everything these tests produced, after trying to leak each secret."""
    secrets = [WEBHOOK_SECRET, HOOK_SECRET, GITHUB_SECRET, KEYS.full, KEYS.reader,
               KEYS.submitter]
    # attempts: a line and a span carrying a secret (redacted on the way out), a request
    # with a key that is wrong, a hook whose body carries the secret and whose signature fails
    logging.getLogger("tests.leak").error("leaked %s", WEBHOOK_SECRET)
    structlog.get_logger("tests.leak").warning("leak", secret=HOOK_SECRET, nested={
        "list": [GITHUB_SECRET]})
    tracer = _trace.active_tracer()
    assert tracer is not None
    tracer.start_span("leak", attributes={"x": f"key={HOOK_SECRET}"}).end()
    r = traced.http.get(f"/v1/tasks/{task['task_id']}",
                        headers={"authorization": f"Bearer {KEYS.full}x"})
    assert r.status_code == 401
    body = body_of({"order": {"id": HOOK_SECRET}})
    wrong = "whsec_" + base64.b64encode(os.urandom(32)).decode()  # valid, but not configured
    forged = standard_headers(body, new_id("msg"), secret=wrong)
    assert traced.http.post("/v1/hooks/orders", content=body, headers=forged).status_code == 401

    texts = list(traced.log_lines())
    assert any("[redacted]" in line for line in texts)  # the attempts above were logged
    for span in traced.spans.get_finished_spans():
        texts.append(span.name)
        texts.append(str(span.status.description or ""))
        texts.extend(str(v) for v in attrs(span).values())
        for event in span.events:
            texts.extend(str(v) for v in (event.attributes or {}).values())
    texts.append(traced.http.get(f"/v1/tasks/{task['task_id']}").text)
    leaks = [(secret[:8], text[:200]) for text in texts for secret in secrets if secret in text]
    assert leaks == []
