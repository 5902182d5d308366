"""The task endpoints: start a task, subscribe to it, read it, cancel a subscription."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.api._door import FrontDoor, door_of, subscription_out, task_id_param
from gateway.api._http import ApiError, json_response, parse_body, read_body, validation_error
from gateway.api._models import (
    SUBSCRIPTION_ID_PATTERN,
    SubscriberIn,
    SubscriptionCreate,
    SubscriptionOut,
    TaskCreate,
    TaskCreated,
)
from gateway.api._tenancy import caller_task_id, reserved, workflow_key
from gateway.api._trace import accept_task
from gateway.api.auth import Caller
from gateway.api.restate_link import HandlerRefused
from gateway.core import DeliveryReceipt, DeliveryState, TaskRequest, TaskState, UserInputError

__all__ = ["add_subscription", "cancel_for", "cancel_subscription", "create_task", "get_task",
           "subscribe_to"]

log = logging.getLogger("gateway.api")

_SUBSCRIPTION_ID = re.compile(SUBSCRIPTION_ID_PATTERN)


def _new_task_id(spec: TaskCreate, idempotency_key: str | None, caller: Caller) -> str:
    """The caller's task id (its tenant's namespace is added by ``workflow_key``): the given
    one, unless it is a hook's, else one derived from the caller's Idempotency-Key (so a
    repeat is the same task), else a new one."""
    if spec.task_id:
        problem = reserved(spec.task_id)
        if problem:
            raise ApiError.invalid("task_id", problem)
        return spec.task_id
    if idempotency_key is not None:
        key = idempotency_key.strip()
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise ApiError.invalid("Idempotency-Key", "1 to 255 printable characters", 422)
        digest = hashlib.sha256(f"{caller.name}\x00{key}".encode()).hexdigest()
        return "t-" + digest[:24]
    return "t-" + uuid.uuid4().hex[:20]


def _prompt(spec: TaskCreate) -> str:
    parts = [spec.prompt] if spec.prompt else []
    if spec.input is not None:
        parts.append("Input (JSON):\n" + json.dumps(spec.input, indent=2, ensure_ascii=False))
    if not parts:
        raise ApiError.invalid("prompt", "give a prompt, an input object, or both")
    return "\n\n".join(parts)


async def create_task(request: Request) -> Response:
    door = door_of(request)
    caller = door.authorize(request, "submit")
    spec = parse_body(TaskCreate, await read_body(request, door.settings.max_body_bytes))
    task_id = _new_task_id(spec, request.headers.get("idempotency-key"), caller)
    key = workflow_key(caller, task_id)
    prompt = _prompt(spec)
    rt = door.runtime()
    try:
        rt.agent(spec.agent)
    except UserInputError as exc:
        raise ApiError.invalid("agent", str(exc)) from None
    subs = [door.subscription(rt, key, s, f"subscriptions[{i}]")
            for i, s in enumerate(spec.subscriptions)]
    if spec.callback_url is not None:
        callback = SubscriberIn(channel="webhook", target=spec.callback_url)
        subs.append(door.subscription(rt, key, callback, "callback_url"))
    if len(prompt) > 100_000:
        raise ApiError.invalid("input" if spec.input else "prompt",
                               "the prompt with its input is longer than 100000 characters")
    try:
        task = TaskRequest(prompt=prompt, agent=spec.agent, labels=spec.labels,
                           subscriptions=subs)
    except ValidationError as exc:  # e.g. a prompt of white space only
        raise validation_error(exc, {"prompt": prompt, "agent": spec.agent}) from None
    with accept_task(key, spec.agent, len(subs)) as span:
        started = await door.restate.start(key, task.model_dump_json(
            exclude_defaults=True).encode())
        span.set_attribute("gateway.task.created", started.new)
    added = len(subs)
    if not started.new and subs:  # a repeat: its new subscribers join, none is dropped
        added = await door.restate.add_subscribers(task_id, subs)
    url = door.status_url(request, task_id)
    log.info("task %s %s by key %s", key, "started" if started.new else "repeated",
             caller.name)
    created = TaskCreated(task_id=task_id, status_url=url, created=started.new,
                          subscriptions=[subscription_out(rt, task_id, s) for s in subs],
                          subscriptions_added=added)
    return json_response(created, 201 if started.new else 200, {"Location": url})


async def add_subscription(request: Request) -> Response:
    door = door_of(request)
    caller = door.authorize(request, "subscribe")
    task_id = task_id_param(request)
    spec = parse_body(SubscriptionCreate, await read_body(request, door.settings.max_body_bytes))
    return json_response(await subscribe_to(door, caller, task_id, spec), 201)


async def subscribe_to(door: FrontDoor, caller: Caller, task_id: str,
                       spec: SubscriptionCreate) -> SubscriptionOut:
    """Add a subscriber to a task (the API's endpoint and the console's form)."""
    key = workflow_key(caller, task_id)
    rt = door.runtime()
    sub = door.subscription(rt, key, spec.root, "body")
    if not await door.restate.exists(key):
        raise ApiError(404, "not_found", f"no task {task_id!r}")
    try:
        result = await door.restate.subscribe(
            key, sub.model_dump_json(exclude_defaults=True).encode())
    except HandlerRefused as exc:
        raise ApiError.invalid("body", str(exc)) from None
    result["task_id"] = caller_task_id(caller, str(result.get("task_id", key)))
    return SubscriptionOut.model_validate(result)


async def get_task(request: Request) -> Response:
    door = door_of(request)
    caller = door.authorize(request, "read")
    task_id = task_id_param(request)
    key = workflow_key(caller, task_id)
    status = await door.restate.status(key)
    status = status.model_copy(update={"task_id": caller_task_id(caller, status.task_id)})
    if status.state in (TaskState.UNKNOWN, TaskState.NOT_STARTED):
        if await door.restate.exists(key):  # accepted, starting
            status = status.model_copy(update={"state": TaskState.RUNNING})
        elif status.state is TaskState.UNKNOWN:
            raise ApiError(404, "not_found", f"no task {task_id!r} (never started, or past "
                                             "its retention)")
    return json_response(status)


async def cancel_subscription(request: Request) -> Response:
    door = door_of(request)
    caller = door.authorize(request, "subscribe")
    task_id = task_id_param(request)
    sid = str(request.path_params["subscription_id"])
    return json_response(await cancel_for(door, caller, task_id, sid))


async def cancel_for(door: FrontDoor, caller: Caller, task_id: str,
                     sid: str) -> DeliveryReceipt:
    """Cancel a waiting subscription (the API's endpoint and the console's form)."""
    key = workflow_key(caller, task_id)
    missing = ApiError(404, "not_found", f"task {task_id!r} has no subscription {sid!r}")
    if not _SUBSCRIPTION_ID.fullmatch(sid):
        raise missing
    status = await door.restate.status(key)
    found = next((r for r in status.deliveries if r.subscription_id == sid), None)
    if found is None:
        raise missing
    if found.state is not DeliveryState.CANCELLED:
        _still_waiting(found)
        found = await door.restate.cancel(key, found)  # what it came to: cancelled, or final
        _still_waiting(found)
        log.info("subscription %s of task %s cancelled", sid, key)
    return found


def _still_waiting(receipt: DeliveryReceipt) -> None:
    if receipt.state.final and receipt.state is not DeliveryState.CANCELLED:
        raise ApiError(409, "conflict", f"subscription {receipt.subscription_id} is already "
                                        f"{receipt.state.value}: there is nothing to cancel")
