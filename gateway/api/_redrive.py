"""``POST /v1/tasks/{task_id}/subscriptions/{subscription_id}/redrive``: deliver a failed
subscription again, in a new durable attempt chain with the same message id."""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.responses import Response

from gateway.api._door import door_of, task_id_param
from gateway.api._http import ApiError, json_response
from gateway.api._models import SUBSCRIPTION_ID_PATTERN
from gateway.api._tenancy import workflow_key
from gateway.api.restate_link import HandlerRefused

__all__ = ["redrive_subscription"]

log = logging.getLogger("gateway.api")

_SUBSCRIPTION_ID = re.compile(SUBSCRIPTION_ID_PATTERN)


async def redrive_subscription(request: Request) -> Response:
    door = door_of(request)
    caller = door.authorize(request, "subscribe")
    task_id = task_id_param(request)
    key = workflow_key(caller, task_id)
    sid = str(request.path_params["subscription_id"])
    if not _SUBSCRIPTION_ID.fullmatch(sid):
        raise ApiError(404, "not_found", f"task {task_id!r} has no subscription {sid!r}")
    try:
        receipt = await door.restate.redrive(key, sid)
    except HandlerRefused as exc:
        if exc.status == 404:  # the tenant's own task id, never the workflow key
            raise ApiError(404, "not_found",
                           f"task {task_id!r} has no subscription {sid!r}") from None
        if exc.status == 409:
            raise ApiError(409, "conflict", str(exc)) from None
        raise
    log.info("subscription %s of task %s redriven", sid, key)
    return json_response(receipt, 202)
