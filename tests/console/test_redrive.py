"""Redrive: every failed delivery of a channel since a time (``POST /v1/redrive``, the CLI's
``gateway redrive --channel``), and the console's button."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from gateway.api import RestateLink
from gateway.api._door import FrontDoor
from gateway.api._errors import EXCEPTION_HANDLERS
from gateway.cli._redrive import parse_since
from gateway.console.redrive import REDRIVE_OPERATION
from gateway.local import WebhookReceiver
from tests.api.conftest import API_SECTIONS, KEYS, load_api
from tests.api.helpers import finished, new_id, poll
from tests.conftest import TEST_CONFIG, WEBHOOK_SECRET


@pytest.fixture
def redrive_app(tmp_path: Path) -> Iterator[TestClient]:
    """The bulk endpoint alone, with the API's real settings and runtime (no Restate call is
    made by the checks under test)."""
    path = tmp_path / "gateway.yaml"
    path.write_text(TEST_CONFIG.replace("MAILBOX_PORT", "2525").replace(
        "RECEIVER_URL", "http://127.0.0.1:9") + API_SECTIONS)
    runtime, settings = load_api(path)
    app = Starlette(routes=[REDRIVE_OPERATION.route()], exception_handlers=EXCEPTION_HANDLERS)
    app.state.door = FrontDoor(settings, lambda: runtime,
                               RestateLink("http://127.0.0.1:9", "http://127.0.0.1:9"))
    with TestClient(app) as client:
        yield client


def test_a_bulk_redrive_refuses_what_it_cannot_do_with_a_clear_422(
        redrive_app: TestClient) -> None:
    full = {"authorization": f"Bearer {KEYS.full}"}
    r = redrive_app.post("/v1/redrive", headers=full,
                         json={"channel": "slak", "since": "2026-01-01T00:00:00Z"})
    assert r.status_code == 422
    assert r.json()["message"].startswith("channel: unknown channel 'slak'; known: ")
    assert "webhook" in r.json()["message"]
    future = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    r = redrive_app.post("/v1/redrive", headers=full,
                         json={"channel": "webhook", "since": future})
    assert r.status_code == 422 and "since: is in the future" in r.json()["message"]
    r = redrive_app.post("/v1/redrive", headers=full, json={"channel": "webhook"})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "since"
    r = redrive_app.post("/v1/redrive", headers={"authorization": f"Bearer {KEYS.reader}"},
                         json={"channel": "webhook", "since": "2026-01-01T00:00:00Z"})
    assert r.status_code == 403 and "'subscribe'" in r.json()["message"]


def test_since_takes_a_time_or_an_age() -> None:
    assert parse_since("2026-11-27T03:00:00Z") == "2026-11-27T03:00:00+00:00"
    assert parse_since("90m", now=7200.0) == "1970-01-01T00:30:00+00:00"
    assert parse_since("2d", now=2 * 86400.0) == "1970-01-01T00:00:00+00:00"


@pytest.mark.restate
def test_failed_deliveries_of_a_channel_are_sent_again_once_the_receiver_is_back(
        api_url: str, http: httpx.Client) -> None:
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[500] * 3).start()
    try:
        task_id = new_id("redrive")
        hook = f"{receiver.url}/hooks/{task_id}"
        since = datetime.fromtimestamp(time.time() - 1, UTC).isoformat()
        r = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Tell them",
                                         "subscriptions": [f"webhook:{hook}"]})
        assert r.status_code == 201, r.text
        failed = poll(http, task_id, finished)
        assert failed["deliveries"][0]["state"] == "failed"
        r = http.post("/v1/redrive", json={"channel": "webhook", "target": hook,
                                           "since": since})
        assert r.status_code == 200, r.text
        assert [d["task_id"] for d in r.json()["redriven"]] == [task_id]
        done = poll(http, task_id, lambda d: d["deliveries"][0]["state"] == "delivered")
        assert done["deliveries"][0]["state"] == "delivered"
        assert len(receiver.delivered()) == 1  # one message, seen once
        assert len({q.headers["webhook-id"] for q in receiver.requests}) == 1
        again = http.post("/v1/redrive", json={"channel": "webhook", "target": hook,
                                               "since": since})
        assert again.json()["redriven"] == []  # nothing failed any more
    finally:
        receiver.stop()
