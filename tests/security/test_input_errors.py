"""Input that used to be a 500: ids with control characters in the path, a webhook
timestamp too large to compare. Each is a 4xx naming the problem, and no control character
of a request reaches a log line."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest

from tests.api.conftest import KEYS, api_config_file, api_url, http
from tests.api.helpers import new_id, standard_headers

pytestmark = pytest.mark.restate

__all__ = ["api_config_file", "api_url", "http"]  # fixtures, used below

CONTROL = ["%0A", "%0D", "%0D%0A", "%00", "%09", "%1B", "%7F"]


def routes(task_id: str, ctl: str) -> list[tuple[str, str]]:
    """Every route with an id in its path, with ``ctl`` after each id in turn."""
    return [
        ("GET", f"/v1/tasks/{task_id}{ctl}"),
        ("POST", f"/v1/tasks/{task_id}{ctl}/subscriptions"),
        ("DELETE", f"/v1/tasks/{task_id}{ctl}/subscriptions/s_1"),
        ("DELETE", f"/v1/tasks/{task_id}/subscriptions/s_1{ctl}"),
        ("POST", f"/v1/hooks/orders{ctl}"),
    ]


@pytest.mark.parametrize("ctl", CONTROL)
def test_an_id_with_a_control_character_is_a_404(http: httpx.Client, ctl: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    task_id = new_id("ctl")
    assert http.post("/v1/tasks", json={"task_id": task_id, "prompt": "x"}).status_code == 201
    for method, path in routes(task_id, ctl):
        r = http.request(method, path, json="a@example.com")
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == "not_found"
    # the task itself is there: only the id with the control character is refused
    assert http.get(f"/v1/tasks/{task_id}").status_code == 200
    for record in caplog.records:
        message = record.getMessage()
        assert not any(c in message for c in "\n\r\x00\x1b\x7f"), message


@pytest.mark.parametrize("timestamp", ["9" * 400, "1" * 13, "-5", "1e9", "+1700000000",
                                       "1_700_000_000", "1700000000.5"])
def test_a_webhook_timestamp_that_is_not_unix_seconds_is_a_401(
    api_url: str, timestamp: str
) -> None:
    body = json.dumps({"order": {"id": "o-1"}, "customer": "c"}).encode()
    headers = standard_headers(body, new_id("msg"))
    headers["webhook-timestamp"] = timestamp
    r = httpx.post(f"{api_url}/v1/hooks/orders", content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert "webhook-timestamp is not unix seconds" in r.json()["message"]


def test_a_huge_timestamp_is_refused_before_the_signature(api_url: str) -> None:
    """Signed with the huge timestamp itself: still 401, never the 500 it was."""
    body = b'{"order": {"id": "o-2"}, "customer": "c"}'
    webhook_id = new_id("msg")
    headers = standard_headers(body, webhook_id, timestamp=time.time())
    headers["webhook-timestamp"] = "9" * 400
    r = httpx.post(f"{api_url}/v1/hooks/orders", content=body, headers=headers)
    assert r.status_code == 401 and "webhook-timestamp is not unix seconds" in r.text
    r = httpx.get(f"{api_url}/v1/tasks/hook-orders-{webhook_id}",
                  headers={"authorization": f"Bearer {KEYS.full}"})
    assert r.status_code == 404  # nothing was started
