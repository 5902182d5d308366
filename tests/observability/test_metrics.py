"""Prometheus metrics at /metrics: a task with a fallback counts once per task, delivery and
attempt - also when the server replays every step - and the waiting gauge comes from Restate."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from gateway.local import WebhookReceiver
from gateway.observability.metrics import metrics_app
from tests.api.helpers import finished, new_id, poll
from tests.conftest import WEBHOOK_SECRET
from tests.observability.conftest import Traced

pytestmark = pytest.mark.restate

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(traced: Traced) -> Samples:
    r = traced.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture
def refusing() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[400] * 10).start()
    yield receiver
    receiver.stop()


def test_a_task_is_counted_once_and_each_attempt_once(
        traced: Traced, refusing: WebhookReceiver, webhook_receiver: WebhookReceiver) -> None:
    before = scrape(traced)
    task_id = new_id("metered")
    # an agent and channels no other test uses: tasks of other tests that finish meanwhile
    # in the same process cannot move these counters
    body = {"task_id": task_id, "prompt": "Count me", "agent": "metered", "subscriptions": [
        {"channel": "metered-webhook", "target": f"{refusing.url}/hooks/{task_id}",
         "fallback": [{"channel": "metered-email", "target": f"{task_id}@example.com"}]},
        {"channel": "metered-webhook", "target": f"{webhook_receiver.url}/hooks/{task_id}"},
    ]}
    assert traced.http.post("/v1/tasks", json=body).status_code == 201
    status = poll(traced.http, task_id, finished, timeout=60)
    assert status["state"] == "succeeded"
    after = scrape(traced)

    assert delta(before, after, "gateway_tasks_started_total", agent="metered") == 1
    assert delta(before, after, "gateway_tasks_finished_total", agent="metered",
                 outcome="succeeded") == 1
    assert delta(before, after, "gateway_deliveries_total", channel="metered-webhook",
                 outcome="delivered-by-fallback") == 1
    assert delta(before, after, "gateway_deliveries_total", channel="metered-webhook",
                 outcome="delivered") == 1
    assert delta(before, after, "gateway_delivery_attempts_total", channel="metered-email",
                 outcome="delivered") == 1
    assert delta(before, after, "gateway_delivery_attempts_total", channel="metered-webhook",
                 outcome="permanent") == 1
    # promise resolved -> provider accepted, one observation per delivered message
    latency = "gateway_delivery_latency_seconds"
    assert delta(before, after, f"{latency}_count", channel="metered-email") == 1
    assert delta(before, after, f"{latency}_sum", channel="metered-email") > 0
    waiting = after[("gateway_subscriptions_waiting", ())]
    assert not math.isnan(waiting) and waiting >= 0


def test_a_process_without_the_api_serves_metrics_on_its_own_port() -> None:
    with TestClient(metrics_app()) as client:
        r = client.get("/metrics")
    assert r.status_code == 200
    assert "gateway_delivery_attempts_total" in r.text
    assert "gateway_tasks_started_total" in r.text
