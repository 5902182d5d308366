"""The index of tasks by when they were submitted: what lists them (``GET /v1/tasks``, the
console) without scanning Restate.

The virtual object ``TaskIndex`` has two kinds of keys:

- a bucket, ``b-YYYYMMDDHHM`` (ten minutes of UTC time), holding one state entry per task
  submitted then (``e:<microseconds>:<workflow key>`` -> id, agent, labels, channels). ``run``
  sends it one one-way ``add`` per task; nothing is sent per delivery, and the task does not
  wait for it. ``page`` (shared) answers the newest entries of one bucket, filtered;
- ``buckets``, the list of buckets in use, told once per bucket by its first entry.

An entry is written once and never changed: a task's state and deliveries are read from the
task itself when it is shown. Entries are kept as long as the tasks are: when a bucket is
listed, ``buckets`` sends itself a delayed ``expire`` of it for the end of the workflow's
retention (a durable timer in Restate), which drops the bucket from the list and clears it.

Only handlers write the index (every writer is private to Restate's ingress, which runs
handlers for whoever reaches it): a caller there cannot plant a task in a listing or drop a
bucket. The API reads it through the ingress (``page``, ``list_buckets``: shared handlers).
"""

from __future__ import annotations

import calendar
import time
from datetime import timedelta
from typing import Any

from restate import ObjectContext, ObjectSharedContext, VirtualObject

from gateway.durable._services import RETENTION

__all__ = ["BUCKETS_KEY", "INDEX", "bucket_of", "entry_key", "index", "record_task"]

INDEX = "TaskIndex"
BUCKETS_KEY = "buckets"
_BUCKET_SECONDS = 600
_ENTRY = "e:"
#: entries one ``page`` answers at most
_MAX_PAGE = 500

index = VirtualObject(INDEX)


def bucket_of(submitted_at: float) -> str:
    """The bucket of a task submitted at ``submitted_at`` (POSIX seconds)."""
    start = int(submitted_at) // _BUCKET_SECONDS * _BUCKET_SECONDS
    return "b-" + time.strftime("%Y%m%d%H%M", time.gmtime(start))[:-1]


def bucket_start(bucket: str) -> float:
    """When ``bucket`` (a key of :func:`bucket_of`) begins, in POSIX seconds."""
    return float(calendar.timegm(time.strptime(bucket[2:] + "0", "%Y%m%d%H%M")))


def expires_in(bucket: str, now: float) -> timedelta:
    """How long ``bucket`` is kept from ``now``: until its last task's retention ends."""
    ends = bucket_start(bucket) + _BUCKET_SECONDS + RETENTION.total_seconds()
    return timedelta(seconds=max(0.0, ends - now))


def entry_key(submitted_at: float, task_key: str) -> str:
    """The state key of a task's entry: sorts by submission time, then workflow key."""
    return f"{_ENTRY}{round(submitted_at * 1_000_000):017d}:{task_key}"


def record_task(ctx: Any, task_key: str, submitted_at: float, agent: str,
                labels: dict[str, str], channels: list[str]) -> None:
    """From ``run``: one one-way call that puts the task in its bucket."""
    entry = {"task_id": task_key, "submitted_at": submitted_at, "agent": agent,
             "labels": labels, "channels": sorted(set(channels))}
    ctx.object_send(add, key=bucket_of(submitted_at), arg=entry)


async def _put(ctx: ObjectContext, entries: list[dict[str, Any]]) -> None:
    """One state read (is the bucket new?) and one write per entry: a repeat of an entry
    writes the same value again."""
    for entry in entries:
        ctx.set(entry_key(float(entry["submitted_at"]), str(entry["task_id"])), entry)
    if not await ctx.get("listed", type_hint=bool):
        ctx.set("listed", True)
        ctx.object_send(add_bucket, key=BUCKETS_KEY, arg=ctx.key())


# private, as every writer here: only the gateway's own handlers say what is in the index
@index.handler(ingress_private=True, enable_lazy_state=True)
async def add(ctx: ObjectContext, entry: dict[str, Any]) -> None:
    """Put one task in this bucket (a repeat of the same task changes nothing)."""
    await _put(ctx, [entry])


@index.handler(name="add_many", ingress_private=True, enable_lazy_state=True)
async def add_many(ctx: ObjectContext, entries: list[dict[str, Any]]) -> None:
    """Put many tasks in this bucket at once (filling an index: imports, benchmarks)."""
    await _put(ctx, entries)


@index.handler(name="add_bucket", ingress_private=True)
async def add_bucket(ctx: ObjectContext, bucket: str) -> None:
    known: list[str] = await ctx.get("list", type_hint=list) or []
    if bucket not in known:
        ctx.set("list", sorted([*known, bucket]))
        # its tasks are gone once the workflow's retention is over: so is their index
        ctx.object_send(expire, key=BUCKETS_KEY, arg=bucket,
                        send_delay=expires_in(bucket, await ctx.time()))


@index.handler(name="expire", ingress_private=True)
async def expire(ctx: ObjectContext, bucket: str) -> None:
    """Drop one bucket from the list and clear its entries (sent delayed by add_bucket)."""
    known: list[str] = await ctx.get("list", type_hint=list) or []
    ctx.set("list", [b for b in known if b != bucket])
    ctx.object_send(clear, key=bucket, arg=None)


@index.handler(name="list_buckets", kind="shared")
async def list_buckets(ctx: ObjectSharedContext) -> list[str]:
    """The buckets in use, oldest first."""
    known: list[str] = await ctx.get("list", type_hint=list) or []
    return known


@index.handler(name="clear", ingress_private=True)
async def clear(ctx: ObjectContext) -> None:
    ctx.clear_all()


def _matches(entry: dict[str, Any], query: dict[str, Any]) -> bool:
    key = str(entry.get("task_id", ""))
    tenant = query.get("tenant")
    if tenant is None:
        if "~" in key:
            return False
    elif not key.startswith(f"{tenant}~"):
        return False
    if query.get("agent") and entry.get("agent") != query["agent"]:
        return False
    if query.get("channel") and query["channel"] not in entry.get("channels", []):
        return False
    labels = entry.get("labels") or {}
    return all(labels.get(k) == v for k, v in (query.get("labels") or {}).items())


@index.handler(name="page", kind="shared")
async def page(ctx: ObjectSharedContext, query: dict[str, Any]) -> list[dict[str, Any]]:
    """This bucket's entries matching ``query`` (``tenant``: None for the tasks of no tenant;
    ``agent``, ``channel``, ``labels``), newest first, those before ``before`` (an entry key)
    only, at most ``limit``; each with its ``cursor`` (its entry key)."""
    before = query.get("before")
    limit = min(int(query.get("limit") or 50), _MAX_PAGE)
    keys = sorted((k for k in await ctx.state_keys() if k.startswith(_ENTRY)), reverse=True)
    out: list[dict[str, Any]] = []
    for key in keys:
        if before is not None and key >= before:
            continue
        entry = await ctx.get(key, type_hint=dict)
        if entry is not None and _matches(entry, query):
            out.append({**entry, "cursor": key})
            if len(out) >= limit:
                break
    return out
