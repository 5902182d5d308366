"""The task index forgets a bucket when its tasks' retention is over: a durable timer set
when the bucket is first listed, not a job someone has to remember to run."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.durable._services import RETENTION
from gateway.durable.task_index import bucket_of, bucket_start, expires_in
from gateway.local import LocalEngine
from tests.api.helpers import finished, new_id, poll

pytestmark = pytest.mark.restate


def test_a_bucket_expires_when_the_retention_of_its_last_task_ends() -> None:
    bucket = bucket_of(1_764_270_123.0)  # 2025-11-27 19:02:03 UTC
    assert bucket_start(bucket) == 1_764_270_000.0
    ends = 1_764_270_600.0 + RETENTION.total_seconds()
    assert expires_in(bucket, 1_764_270_123.0).total_seconds() == ends - 1_764_270_123.0
    assert expires_in(bucket, ends + 5).total_seconds() == 0  # already over: at once


def _admin_query(engine: LocalEngine, sql: str) -> list[dict[str, object]]:
    r = httpx.post(f"{engine.admin_url}/query", json={"query": sql},
                   headers={"accept": "application/json"}, timeout=10)
    r.raise_for_status()
    rows: list[dict[str, object]] = r.json()["rows"]
    return rows


def test_listing_a_bucket_schedules_its_expiry_in_restate(
        http: httpx.Client, restate_server: LocalEngine) -> None:
    task_id = new_id("expiring")
    before = time.time()
    r = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Count",
                                     "subscriptions": [f"{task_id}@example.com"]})
    assert r.status_code == 201, r.text
    poll(http, task_id, finished)
    bucket = bucket_of(before)
    sql = ("SELECT * FROM sys_invocation WHERE target_service_name = "
           "'TaskIndex' AND target_handler_name = 'expire' AND target_service_key = 'buckets'")
    deadline = time.monotonic() + 10
    while not (rows := _admin_query(restate_server, sql)) and time.monotonic() < deadline:
        time.sleep(0.1)
    # one timer per bucket listed in this session's server (other tests list theirs too)
    assert rows and all(row["status"] == "scheduled" for row in rows), rows
    due = bucket_start(bucket) + 600 + RETENTION.total_seconds()
    starts = [_epoch(row["scheduled_start_at"]) for row in rows]
    assert any(abs(start - due) < 120 for start in starts), (starts, due)


def _epoch(value: object) -> float:
    """Restate's timestamps come as ISO strings or milliseconds."""
    if isinstance(value, (int, float)):
        return float(value) / 1000
    from datetime import datetime
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def test_a_caller_of_the_ingress_cannot_write_the_index(
        http: httpx.Client, restate_server: LocalEngine) -> None:
    """Restate's ingress runs handlers for whoever reaches it: the index's writers are not
    among them, so nobody there plants a task in a listing or drops a bucket."""
    task_id = new_id("indexed")
    r = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Count"})
    assert r.status_code == 201, r.text
    poll(http, task_id, finished)
    deadline = time.monotonic() + 10  # the index is told one way: wait for it, bounded
    while not (mine := [t for t in http.get("/v1/tasks", params={"limit": 100}).json()["tasks"]
                        if t["task_id"] == task_id]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mine, "the task never showed in the listing"
    bucket = bucket_of(mine[0]["submitted_at"])
    forged = {"task_id": new_id("forged"), "submitted_at": time.time(), "agent": "default",
              "labels": {}, "channels": []}
    index = f"{restate_server.ingress_url}/TaskIndex"
    for path, body in ((f"{bucket}/add", forged), (f"{bucket}/add_many", [forged]),
                       ("buckets/add_bucket", "b-2099010100"), ("buckets/expire", bucket),
                       (f"{bucket}/clear", None), ("buckets/prune", "b-9")):
        r = httpx.post(f"{index}/{path}", json=body, timeout=10)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    listed = httpx.post(f"{index}/buckets/list_buckets", timeout=10).json()
    assert bucket in listed and "b-2099010100" not in listed, listed
    ids = {t["task_id"] for t in http.get("/v1/tasks", params={"limit": 100}).json()["tasks"]}
    assert task_id in ids and forged["task_id"] not in ids
