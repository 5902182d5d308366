"""Live updates of a task's page: server-sent events carrying the re-rendered timeline.

The stream asks Restate for the task's status every :data:`POLL_SECONDS` and sends an
``update`` event when what the page shows changed, ``done`` once nothing will change any more
(the task finished and every delivery is final), and a comment now and then so proxies keep
the connection. It ends after :data:`MAX_SECONDS` (the browser reconnects) or when the
browser goes away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.api._door import door_of
from gateway.api._tenancy import caller_task_id
from gateway.console._access import Viewer, viewer
from gateway.console._pages import task_status, timeline_of
from gateway.console._render import SECURITY_HEADERS, render

__all__ = ["MAX_SECONDS", "POLL_SECONDS", "task_events"]

POLL_SECONDS = 0.5
MAX_SECONDS = 600.0
_KEEPALIVE_SECONDS = 15.0


def _event(name: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"


async def _stream(request: Request, who: Viewer, key: str) -> AsyncIterator[str]:
    door = door_of(request)
    last = ""
    quiet_since = time.monotonic()
    deadline = time.monotonic() + MAX_SECONDS
    yield "retry: 2000\n\n"
    while time.monotonic() < deadline:
        status = await door.restate.status(key)
        status = status.model_copy(update={"task_id": caller_task_id(who.caller,
                                                                      status.task_id)})
        tl = timeline_of(status, who)
        html = render("_live.html", request, tl=tl, who=who,
                      admin_ui=f"{door.restate.admin_url}/ui",
                      redrive=request.app.state.redrive_enabled)
        if html != last:
            last = html
            quiet_since = time.monotonic()
            yield _event("update", html)
        elif time.monotonic() - quiet_since > _KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        if tl.settled:
            yield _event("done", tl.state)
            return
        await asyncio.sleep(POLL_SECONDS)


async def task_events(request: Request) -> Response:
    who = viewer(request, "read")
    key, _ = await task_status(request, who)
    return StreamingResponse(_stream(request, who, key), media_type="text/event-stream",
                             headers={**SECURITY_HEADERS, "x-accel-buffering": "no"})
