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
