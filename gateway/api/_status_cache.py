"""Statuses of settled tasks, kept a little while by the API process for the task list.

A row of the list needs its task's status (state, delivery counts): one call through Restate
per row. A task that finished with every delivery final rarely changes (a redrive or a late
subscriber does change it), so its status is kept for :data:`TTL_SECONDS`; a running task's
is read every time, and the task's own page never uses this cache. The console's actions
forget the task they changed at once; a change made elsewhere shows in the list within
:data:`TTL_SECONDS`.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict

from gateway.api.restate_link import RestateLink
from gateway.core import TaskState, TaskStatus

__all__ = ["MAX_ENTRIES", "TTL_SECONDS", "forget", "settled_status"]

TTL_SECONDS = 30.0
MAX_ENTRIES = 20_000

_caches: weakref.WeakKeyDictionary[RestateLink, OrderedDict[str, tuple[float, TaskStatus]]] = \
    weakref.WeakKeyDictionary()


def _settled(status: TaskStatus) -> bool:
    if status.state is TaskState.UNKNOWN:  # nothing there (past retention): stays so
        return True
    return status.state in (TaskState.SUCCEEDED, TaskState.FAILED) and all(
        r.state.final for r in status.deliveries)


async def settled_status(link: RestateLink, key: str) -> TaskStatus:
    """The status of the task ``key``: kept a while once settled, else read now."""
    cache = _caches.setdefault(link, OrderedDict())
    now = time.monotonic()
    found = cache.get(key)
    if found is not None and found[0] > now:
        return found[1]
    status = await link.status(key)
    if _settled(status):
        cache[key] = (now + TTL_SECONDS, status)
        cache.move_to_end(key)
        while len(cache) > MAX_ENTRIES:
            cache.popitem(last=False)
    else:
        cache.pop(key, None)
    return status


def forget(link: RestateLink, key: str) -> None:
    """The task ``key`` changed (an action of this process): read it afresh next time."""
    cache = _caches.get(link)
    if cache is not None:
        cache.pop(key, None)
