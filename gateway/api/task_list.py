"""Listing tasks: the task index (see :mod:`gateway.durable.task_index`) read newest first,
filtered, each row joined to its task's live state and delivery counts.

``GET /v1/tasks?state=&agent=&label=K=V&channel=&limit=&cursor=`` (scope ``read``): a caller
sees only the tasks of its tenant. The cursor is opaque (the last row's place in the index);
a page may hold fewer rows than asked and still a cursor when a ``state`` filter had to look
at many tasks (at most :data:`MAX_SCANNED` per request).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from gateway.api._door import door_of
from gateway.api._http import ApiError, json_response
from gateway.api._status_cache import settled_status
from gateway.api._tenancy import caller_task_id
from gateway.api.auth import Caller
from gateway.api.restate_link import RestateLink
from gateway.core import DeliveryState, TaskState, TaskStatus
from gateway.durable.task_index import BUCKETS_KEY, INDEX, bucket_of

__all__ = ["MAX_SCANNED", "TaskFilter", "TaskList", "TaskSummary", "list_tasks",
           "list_tasks_endpoint", "parse_filter"]

MAX_SCANNED = 400
#: index buckets read at once
_PARALLEL = 8
_DELIVERED = {DeliveryState.DELIVERED, DeliveryState.DELIVERED_BY_FALLBACK}
_FAILED = {DeliveryState.FAILED, DeliveryState.REJECTED}
_STATES = {s.value for s in TaskState}


class TaskSummary(BaseModel):
    """One row of the task list."""

    task_id: str
    agent: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    submitted_at: float | None = None
    completed_at: float | None = None
    state: TaskState
    error: str | None = None
    channels: list[str] = Field(default_factory=list)
    delivered: int = 0
    failed: int = 0
    waiting: int = 0


class TaskList(BaseModel):
    """A page of tasks, newest first; ``next_cursor`` fetches the next (None: the last)."""

    tasks: list[TaskSummary]
    next_cursor: str | None = None


@dataclass(frozen=True)
class TaskFilter:
    state: str | None = None
    agent: str | None = None
    channel: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    limit: int = 25
    cursor: str | None = None

    def query_string(self) -> str:
        """The filter as a query string, without the cursor (for links)."""
        pairs: list[tuple[str, str]] = []
        for name in ("state", "agent", "channel"):
            value = getattr(self, name)
            if value:
                pairs.append((name, value))
        pairs += [("label", f"{k}={v}") for k, v in sorted(self.labels.items())]
        return urlencode(pairs)


def parse_filter(params: Sequence[tuple[str, str]]) -> TaskFilter:
    """The filter of a query string; a bad value is a 422 naming the parameter."""
    values: dict[str, Any] = {"labels": {}}
    for name, raw in params:
        value = raw.strip()
        if name == "label":
            key, sep, label = value.partition("=")
            if not sep or not key:
                raise ApiError.invalid("label", "write a label filter as KEY=VALUE")
            values["labels"][key] = label
        elif name == "state":
            if value and value not in _STATES:
                raise ApiError.invalid("state", f"one of {', '.join(sorted(_STATES))}")
            values["state"] = value or None
        elif name in ("agent", "channel", "cursor"):
            values[name] = value or None
        elif name == "limit":
            if not value.isdigit() or not 1 <= int(value) <= 100:
                raise ApiError.invalid("limit", "a whole number from 1 to 100")
            values["limit"] = int(value)
    return TaskFilter(**values)


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith("e:"):
        raise ApiError.invalid("cursor", "not a cursor of this list; start without one")
    return raw


def _encode_cursor(entry_key: str) -> str:
    return base64.urlsafe_b64encode(entry_key.encode()).decode().rstrip("=")


def _summary(entry: dict[str, Any], status: TaskStatus, shown_id: str) -> TaskSummary:
    counts = {"delivered": 0, "failed": 0, "waiting": 0}
    for receipt in status.deliveries:
        if receipt.state in _DELIVERED:
            counts["delivered"] += 1
        elif receipt.state in _FAILED:
            counts["failed"] += 1
        elif not receipt.state.final:
            counts["waiting"] += 1
    state = status.state
    return TaskSummary(task_id=shown_id, agent=entry.get("agent"),
                       labels=entry.get("labels") or {},
                       submitted_at=entry.get("submitted_at"), completed_at=status.completed_at,
                       state=state, error=status.error, channels=entry.get("channels") or [],
                       **counts)


async def _entries(link: RestateLink, query: dict[str, Any], buckets: list[str],
                   before: str | None, want: int, width: int) -> tuple[
                       list[dict[str, Any]], list[str], str | None]:
    """Up to ``want`` index entries, newest first, from ``buckets`` (newest first; the first
    read from ``before`` on), asking ``width`` buckets at once; with the buckets and the
    cursor to go on from."""
    batch = buckets[:width]
    pages = await asyncio.gather(*(
        link._call(INDEX, bucket, "page", _json({**query, "limit": want,
                                                 "before": before if i == 0 else None}))
        for i, bucket in enumerate(batch)))
    entries: list[dict[str, Any]] = []
    for page in pages:
        entries.extend(page)
        if len(page) >= want or len(entries) >= want:  # that bucket may hold more
            entries = entries[:want]
            last = str(entries[-1]["cursor"])
            rest = bucket_of(int(last.split(":")[1]) / 1_000_000)
            return entries, [b for b in buckets if b <= rest], last
    return entries, buckets[len(batch):], None


async def list_tasks(link: RestateLink, caller: Caller, flt: TaskFilter) -> TaskList:
    """A page of the caller's tasks matching ``flt``, newest first."""
    before = _decode_cursor(flt.cursor)
    buckets: list[str] = await link._call(INDEX, BUCKETS_KEY, "list_buckets", None)
    if before is not None:
        last = bucket_of(int(before.split(":")[1]) / 1_000_000)
        buckets = [b for b in buckets if b <= last]
    buckets.reverse()
    query: dict[str, Any] = {"agent": flt.agent, "channel": flt.channel, "labels": flt.labels}
    if caller.tenant is not None:
        query["tenant"] = caller.tenant
    rows: list[tuple[str, TaskSummary]] = []
    scanned = 0
    cursor: str | None = before
    last_seen: str | None = None
    width = 1  # one bucket first (it often fills the page), then more at once
    while buckets and len(rows) <= flt.limit and scanned < MAX_SCANNED:
        want = flt.limit + 1 - len(rows) if flt.state is None else 50
        entries, buckets, cursor = await _entries(link, query, buckets, cursor, want, width)
        width = min(width * 2, _PARALLEL)
        scanned += len(entries)
        statuses = await asyncio.gather(*(settled_status(link, str(e["task_id"]))
                                          for e in entries))
        for entry, status in zip(entries, statuses, strict=True):
            row = _summary(entry, status, caller_task_id(caller, str(entry["task_id"])))
            if flt.state is None or row.state.value == flt.state:
                rows.append((str(entry["cursor"]), row))
        if entries:
            last_seen = str(entries[-1]["cursor"])
    if len(rows) > flt.limit:
        return TaskList(tasks=[r for _, r in rows[:flt.limit]],
                        next_cursor=_encode_cursor(rows[flt.limit - 1][0]))
    if scanned >= MAX_SCANNED and buckets and last_seen is not None:
        # more to look at, few found yet: the next page goes on from the last one seen
        return TaskList(tasks=[r for _, r in rows], next_cursor=_encode_cursor(last_seen))
    return TaskList(tasks=[r for _, r in rows])


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


async def list_tasks_endpoint(request: Request) -> Response:
    door = door_of(request)
    caller = door.authorize(request, "read")
    flt = parse_filter(list(request.query_params.multi_items()))
    return json_response(await list_tasks(door.restate, caller, flt))
