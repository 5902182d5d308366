"""The console end to end over HTTP: sign in, the task list (filters, pages), a task's
timeline with a failed delivery, its live stream, the actions with their CSRF check, and
the error pages (unknown task, missing scope)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import httpx
import pytest

from gateway.local import WebhookReceiver
from tests.api.conftest import KEYS
from tests.api.helpers import finished, new_id, poll
from tests.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.restate


@pytest.fixture
def failing() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[500] * 10).start()
    yield receiver
    receiver.stop()


def _session(api_url: str, key: str) -> httpx.Client:
    """A browser-like client signed in with ``key`` (the session cookie only)."""
    client = httpx.Client(base_url=api_url, timeout=30)
    r = client.post("/console/login", data={"api_key": key})
    assert r.status_code == 303, r.text
    return client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def test_console_shows_tasks_and_a_failed_delivery_and_acts_safely(
        api_url: str, http: httpx.Client, failing: WebhookReceiver) -> None:
    # signing in: a redirect to the login page, then an HttpOnly SameSite=Strict cookie
    anonymous = httpx.Client(base_url=api_url, timeout=30)
    r = anonymous.get("/console/")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    bad = anonymous.post("/console/login", data={"api_key": "gwk_wrong"})
    assert bad.status_code == 401 and "unknown API key" in bad.text
    r = anonymous.post("/console/login", data={"api_key": KEYS.full})
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert KEYS.full not in cookie and "Secure" not in cookie  # plain HTTP on loopback
    anonymous.close()

    task_id = new_id("console")
    hook = f"{failing.url}/hooks/{task_id}"
    r = http.post("/v1/tasks", json={
        "task_id": task_id, "prompt": "Report", "labels": {"team": "console-test"},
        "subscriptions": [f"{task_id}@example.com", f"webhook:{hook}"]})
    assert r.status_code == 201, r.text
    mail_sub = r.json()["subscriptions"][0]["subscription_id"]
    poll(http, task_id, finished, timeout=60)

    admin = _session(api_url, KEYS.full)
    reader = _session(api_url, KEYS.reader)
    try:
        # the list: found by its label and channel, with one failed and one delivered
        listing = admin.get("/console/", params={"label": "team=console-test",
                                                 "channel": "webhook"})
        assert listing.status_code == 200
        assert task_id in listing.text and "1 failed" in listing.text
        assert "1 delivered" in listing.text and "row-bad" in listing.text
        assert task_id not in admin.get("/console/", params={"agent": "slow"}).text
        # the same through the API, one task a page
        api = http.get("/v1/tasks", params={"label": "team=console-test", "limit": 1})
        assert api.status_code == 200, api.text
        [row] = api.json()["tasks"]
        assert row["task_id"] == task_id and (row["failed"], row["delivered"]) == (1, 1)
        assert http.get("/v1/tasks", params={"state": "sleeping"}).status_code == 422

        # the task: its timeline, every attempt with the provider status, the failure first
        page = admin.get(f"/console/tasks/{task_id}")
        assert page.status_code == 200
        html = page.text
        assert html.index("HTTP 500") < html.index("delivered by email")
        assert html.count("attempt ") >= 4 and "1 failed" in html
        assert re.search(r"Trace id</dt><dd><code>[0-9a-f]{32}</code>", html)
        assert "/ui/invocations/inv_" in html
        mail = f"{task_id}@example.com"
        assert mail in html  # a key that may act sees the full target
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        # a read-only key sees it masked and gets no buttons
        seen = reader.get(f"/console/tasks/{task_id}").text
        assert mail not in seen and "c***@example.com" in seen
        assert "Cancel</button>" not in seen and "1 failed" in seen

        # live stream: the current timeline, then done (the task is settled)
        with admin.stream("GET", f"/console/tasks/{task_id}/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            text = "".join(events.iter_text())
        assert "event: update" in text and "HTTP 500" in text and "event: done" in text

        # actions: a form without its CSRF token is refused; a reader lacks the scope
        r = admin.post(f"/console/tasks/{task_id}/subscribe", data={"subscriber": "x@y.z"})
        assert r.status_code == 403 and "CSRF" in r.text
        r = reader.post(f"/console/tasks/{task_id}/subscribe",
                        data={"subscriber": "x@example.com", "csrf": _csrf(seen)})
        assert r.status_code == 403 and "lacks the scope 'subscribe'" in unescape(r.text)
        late = f"{task_id}-late@example.com"
        r = admin.post(f"/console/tasks/{task_id}/subscribe",
                       data={"subscriber": late, "csrf": _csrf(html)})
        assert r.status_code == 303, r.text
        done = poll(http, task_id, lambda d: finished(d) and len(d["deliveries"]) == 3)
        assert any(d["address"] == late and d["state"] == "delivered"
                   for d in done["deliveries"])
        r = admin.post(f"/console/tasks/{task_id}/subscriptions/{mail_sub}/cancel",
                       data={"csrf": _csrf(html)})
        assert r.status_code == 409 and "already delivered" in r.text

        # bad input: an unknown task is a 404 page; Bearer works without a session
        missing = admin.get("/console/tasks/no-such-task-here")
        assert missing.status_code == 404
        assert "no task 'no-such-task-here'" in unescape(missing.text)
        bearer = httpx.get(f"{api_url}/console/tasks/{task_id}", timeout=30,
                           headers={"authorization": f"Bearer {KEYS.reader}"})
        assert bearer.status_code == 200 and task_id in bearer.text
        for text in (html, seen, listing.text):
            assert KEYS.full not in text and WEBHOOK_SECRET not in text
    finally:
        admin.close()
        reader.close()
