"""The inbound hook endpoint: a signed webhook of a configured source starts a task."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response

from gateway.api._door import door_of
from gateway.api._http import ApiError, json_response, parse_json, read_body
from gateway.api._models import TaskCreated
from gateway.api._tenancy import tenant_key
from gateway.api._trace import accept_task
from gateway.config import (
    HookRejected,
    MappingFailed,
    hook_task_id,
    replay_key,
    task_request,
    verify,
)

__all__ = ["receive_hook"]

log = logging.getLogger("gateway.api")


async def receive_hook(request: Request) -> Response:
    door = door_of(request)
    source = str(request.path_params["source"])
    hook = door.settings.hooks.get(source)
    if hook is None:
        raise ApiError(404, "not_found", f"no inbound hook source {source!r}")
    body = await read_body(request, door.settings.max_body_bytes)
    try:
        webhook_id = verify(hook, request.headers, body, time.time())
    except HookRejected as exc:
        log.warning("hook %s: request refused: %s", source, exc)
        raise ApiError(401, "unauthenticated", f"hook {source}: {exc}") from None
    payload = parse_json(body)
    task_id = hook_task_id(source, replay_key(hook, webhook_id, body))
    key = tenant_key(hook.tenant, task_id)
    try:
        task = task_request(hook, source, webhook_id, payload)
    except MappingFailed as exc:
        raise ApiError.invalid("body", str(exc)) from None
    with accept_task(key, task.agent, len(task.subscriptions), hook=source) as span:
        started = await door.restate.start(key, task.model_dump_json(
            exclude_defaults=True).encode())
        span.set_attribute("gateway.task.created", started.new)
    log.info("hook %s: delivery %s -> task %s (%s)", source, webhook_id, key,
             "started" if started.new else "duplicate")
    url = door.status_url(request, task_id)
    created = TaskCreated(task_id=task_id, status_url=url, created=started.new)
    return json_response(created, 201 if started.new else 200, {"Location": url})
