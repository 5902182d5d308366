"""Redrive: deliver a failed subscription again, one (the console's button) or every failed
delivery of a channel since a time (``POST /v1/redrive``).

Each redrive is :meth:`RestateLink.redrive` (a new durable attempt chain with the same message
id, so receivers that drop duplicates by ``webhook-id`` see one message; a delivered
subscription is refused with 409). The bulk form finds its deliveries through the task index:
the tasks with a subscriber on the channel, submitted from a day before ``since`` on (a
delivery fails after its task was submitted, within the task's run time), whose receipt on
that channel (optionally that target) failed at or after ``since``.

``REDRIVE_OPERATION`` joins the API's operations (gateway/api/front_door.py); the console's
mount adds ``REDRIVE_ROUTES`` (its buttons).
"""

from __future__ import annotations

import time
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api._door import FrontDoor, door_of, task_id_param
from gateway.api._http import ApiError, json_response, parse_body, read_body
from gateway.api._openapi import Operation
from gateway.api._status_cache import forget
from gateway.api._tenancy import workflow_key
from gateway.api.auth import Caller
from gateway.api.task_list import TaskFilter, list_tasks
from gateway.console._access import check_csrf, viewer
from gateway.console._actions import back_to_task, refused_page
from gateway.console._pages import form_of
from gateway.core import CHANNEL_NAME_PATTERN, DeliveryReceipt, DeliveryState

__all__ = ["MAX_REDRIVES", "REDRIVE_OPERATION", "REDRIVE_ROUTES", "RedriveRequest",
           "RedriveResult", "Redriven", "redrive_action", "redrive_bulk", "redrive_endpoint",
           "redrive_one"]

#: deliveries one bulk redrive sends again at most (the answer says when it stopped there)
MAX_REDRIVES = 500
_LOOKBACK_SECONDS = 86_400.0


class RedriveRequest(BaseModel):
    """Which failed deliveries to send again."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(pattern=CHANNEL_NAME_PATTERN, examples=["webhook"])
    target: str | None = Field(None, min_length=1, max_length=2048,
                               description="only this target (as the task shows it)")
    since: datetime = Field(description="deliveries that failed at or after this time "
                                        "(ISO 8601, or POSIX seconds)")


class Redriven(BaseModel):
    task_id: str
    subscription_id: str
    #: the receipt's state after the redrive was asked (retrying, delivering, ...) or refused
    state: str
    error: str | None = None


class RedriveResult(BaseModel):
    redriven: list[Redriven]
    #: True when it stopped at MAX_REDRIVES: run it again for the rest
    truncated: bool = False


async def redrive_one(door: FrontDoor, caller: Caller, task_id: str,
                      sid: str) -> DeliveryReceipt:
    """Redrive one subscription of a caller's task: its receipt (404/409 as the API's)."""
    key = workflow_key(caller, task_id)
    try:
        return await door.restate.redrive(key, sid)
    finally:
        forget(door.restate, key)


def _matches(receipt: DeliveryReceipt, spec: RedriveRequest, since: float) -> bool:
    if receipt.state is not DeliveryState.FAILED or receipt.channel != spec.channel:
        return False
    if spec.target is not None and spec.target not in (receipt.address, receipt.target):
        return False
    return receipt.updated_at >= since


def check_request(door: FrontDoor, spec: RedriveRequest) -> float:
    """``since`` as POSIX seconds; 422 for an unknown channel or a time in the future."""
    names = door.runtime().channels.names
    if spec.channel not in names:
        raise ApiError.invalid("channel", f"unknown channel {spec.channel!r}; known: "
                                          f"{', '.join(sorted(names))}")
    since = spec.since.timestamp()
    if since > time.time() + 1:
        raise ApiError.invalid("since", "is in the future; give a time in the past (deliveries "
                                        "that failed since then are sent again)")
    return since


async def redrive_bulk(door: FrontDoor, caller: Caller, spec: RedriveRequest) -> RedriveResult:
    since = check_request(door, spec)
    done: list[Redriven] = []
    cursor: str | None = None
    while True:
        page = await list_tasks(door.restate, caller,
                                TaskFilter(channel=spec.channel, limit=100, cursor=cursor))
        for row in page.tasks:
            if row.submitted_at is not None and row.submitted_at < since - _LOOKBACK_SECONDS:
                return RedriveResult(redriven=done)
            if not row.failed:
                continue
            key = workflow_key(caller, row.task_id)
            status = await door.restate.status(key)
            for receipt in status.deliveries:
                if not _matches(receipt, spec, since):
                    continue
                if len(done) >= MAX_REDRIVES:
                    return RedriveResult(redriven=done, truncated=True)
                done.append(await _redrive_row(door, caller, row.task_id, receipt))
        if page.next_cursor is None:
            return RedriveResult(redriven=done)
        cursor = page.next_cursor


async def _redrive_row(door: FrontDoor, caller: Caller, task_id: str,
                       receipt: DeliveryReceipt) -> Redriven:
    sid = receipt.subscription_id
    try:
        after = await redrive_one(door, caller, task_id, sid)
    except ApiError as exc:  # delivered or cancelled meanwhile: said, and the rest go on
        return Redriven(task_id=task_id, subscription_id=sid,
                        state=receipt.state.value, error=exc.message)
    return Redriven(task_id=task_id, subscription_id=sid, state=after.state.value)


async def redrive_endpoint(request: Request) -> Response:
    door = door_of(request)
    caller = door.authorize(request, "subscribe")
    spec = parse_body(RedriveRequest, await read_body(request, door.settings.max_body_bytes))
    return json_response(await redrive_bulk(door, caller, spec))


async def redrive_action(request: Request) -> Response:
    """The console's Redrive button of a failed delivery."""
    who = viewer(request, "subscribe")
    check_csrf(request, who, (await form_of(request)).get("csrf"))
    task_id = task_id_param(request)
    try:
        await redrive_one(door_of(request), who.caller, task_id,
                          str(request.path_params["subscription_id"]))
    except ApiError as exc:
        raise refused_page(exc) from None
    return back_to_task(request, task_id)


REDRIVE_ROUTES = [Route("/tasks/{task_id}/subscriptions/{subscription_id}/redrive",
                        redrive_action, methods=["POST"])]

REDRIVE_OPERATION = Operation(
    "post", "/v1/redrive", "redriveFailed", "Redrive every failed delivery of a channel",
    "subscribe", {200: ("The deliveries sent again.", RedriveResult)},
    errors=(400, 401, 403, 413, 422), request=RedriveRequest,
    description="Every delivery on the channel (optionally to one target) that failed at or "
                "after `since` gets a new attempt chain with the same message id. An unknown "
                "channel or a time in the future is 422.",
    endpoint=redrive_endpoint)
