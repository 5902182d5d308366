"""The front door: an authenticated HTTP API in front of Restate's ingress.

::

    POST   /v1/tasks                               submit      start a task (idempotent)
    POST   /v1/tasks/{task_id}/subscriptions       subscribe   add a subscriber, any time
    GET    /v1/tasks/{task_id}                     read        state, result, receipts
    DELETE /v1/tasks/{task_id}/subscriptions/{id}  subscribe   cancel a waiting subscription
    POST   /v1/hooks/{source}                      (signed)    inbound webhook -> task
    GET    /healthz, /readyz, /openapi.json        (open)

Restate's ingress has no authentication and stays private; this API checks API keys (see
:mod:`gateway.api.auth`) and inbound signatures (:mod:`gateway.config.hooks`), validates every
input strictly, and calls the workflow's handlers through one shared HTTP client.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api._http import (
    ApiError,
    error_response,
    json_response,
    parse_body,
    parse_json,
    read_body,
    validation_error,
)
from gateway.api._limits import ApiLimits, BodyLimits
from gateway.api._models import (
    SUBSCRIPTION_ID_PATTERN,
    TASK_ID_PATTERN,
    ErrorBody,
    Health,
    Readiness,
    SubscriberIn,
    SubscriptionCreate,
    SubscriptionOut,
    TaskCreate,
    TaskCreated,
)
from gateway.api._openapi import Header, Operation, PathParam, openapi_document
from gateway.api._single_flight import SingleFlight
from gateway.api._tenancy import caller_task_id, reserved, tenant_key, workflow_key
from gateway.api._trace import HttpServerSpans, accept_task
from gateway.api.auth import Caller, KeyRing, Unauthenticated
from gateway.api.restate_link import HandlerRefused, RestateFailed, RestateLink
from gateway.channels import check_untrusted
from gateway.config import (
    GatewayConfig,
    HookRejected,
    HookSource,
    MappingFailed,
    hook_task_id,
    replay_key,
    task_request,
    verify,
)
from gateway.config import Scope as KeyScope
from gateway.core import (
    DeliveryReceipt,
    DeliveryState,
    Subscription,
    Target,
    TaskRequest,
    TaskState,
    TaskStatus,
    UserInputError,
)
from gateway.durable import Runtime
from gateway.observability import metrics as _metrics
from gateway.observability import trace as _trace

__all__ = ["OPERATIONS", "ApiSettings", "FrontDoor", "create_api"]

log = logging.getLogger("gateway.api")

_TASK_ID = re.compile(TASK_ID_PATTERN)
_SUBSCRIPTION_ID = re.compile(SUBSCRIPTION_ID_PATTERN)
_HOOK_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
#: /metrics asks Restate for the waiting subscriptions at most this often (one query)
METRICS_REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class ApiSettings:
    """What the API takes from the configuration (replaced whole on a reload)."""

    keys: KeyRing
    hooks: Mapping[str, HookSource]
    max_body_bytes: int = 1_048_576
    #: channels callers may subscribe on (None: those of the built-in named plugins)
    channels: frozenset[str] | None = None
    public_url: str | None = None
    limits: ApiLimits = field(default_factory=ApiLimits)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> ApiSettings:
        api = config.api
        return cls(keys=KeyRing(api.keys), hooks=dict(config.hooks),
                   max_body_bytes=api.max_body_bytes,
                   channels=None if api.channels is None else frozenset(api.channels),
                   public_url=api.public_url,
                   limits=ApiLimits(header_timeout=api.header_timeout,
                                    body_timeout=api.body_timeout,
                                    keep_alive_timeout=api.keep_alive_timeout,
                                    max_connections=api.max_connections))


class FrontDoor:
    """The API's state: settings (swappable on reload), the runtime, the link to Restate."""

    def __init__(self, settings: ApiSettings, runtime: Callable[[], Runtime],
                 restate: RestateLink) -> None:
        self.settings = settings
        self.runtime = runtime
        self.restate = restate

    # -- checks --------------------------------------------------------------------------

    def authorize(self, request: Request, scope: KeyScope) -> Caller:
        try:
            caller = self.settings.keys.authenticate(request.headers.get("authorization"))
        except Unauthenticated as exc:
            raise ApiError(401, "unauthenticated", str(exc),
                           headers={"WWW-Authenticate": "Bearer"}) from None
        if scope not in caller.scopes:
            raise ApiError(403, "forbidden", f"the API key {caller.name!r} lacks the scope "
                                             f"{scope!r}")
        return caller

    def subscription(self, rt: Runtime, task_id: str, spec: SubscriberIn,
                     field: str) -> Subscription:
        """The subscriber validated against its channel now (422 naming ``field`` if not), as
        one that does not come from the YAML file (see gateway.channels.check_untrusted)."""
        if spec.template is not None and spec.template not in rt.renderer.template_names:
            raise ApiError.invalid(field, f"unknown template {spec.template!r}")
        try:
            sub = Subscription(
                channel=spec.channel, target=spec.target, outcomes=spec.outcomes,
                template=spec.template,
                fallback=[Target(channel=t.channel, target=t.target) for t in spec.fallback],
            )
            allowed = self.settings.channels
            target = check_untrusted(rt.channels, sub, allowed)
            fallback = [t.model_copy(update={"target": check_untrusted(rt.channels, t, allowed)})
                        for t in sub.fallback]
        except (UserInputError, ValueError) as exc:
            raise ApiError.invalid(field, rt.redact(str(exc).splitlines()[0])) from None
        return sub.model_copy(update={"target": target, "fallback": fallback}).identified(
            task_id)

    def status_url(self, request: Request, task_id: str) -> str:
        base = self.settings.public_url or str(request.base_url).rstrip("/")
        return f"{base}/v1/tasks/{quote(task_id, safe='')}"


def _door(request: Request) -> FrontDoor:
    door: FrontDoor = request.app.state.door
    return door


def _task_id_param(request: Request) -> str:
    task_id = str(request.path_params["task_id"])
    if not _TASK_ID.fullmatch(task_id):  # `$` of a match would let a final newline pass
        raise ApiError(404, "not_found", "no such task (task ids are letters, digits and "
                                         "_.:@-, at most 128)")
    return task_id


def _subscription_out(rt: Runtime, task_id: str, sub: Subscription) -> SubscriptionOut:
    assert sub.id is not None
    redacted = rt.channels.get(sub.channel).channel.redact_target(sub.target)
    return SubscriptionOut(task_id=task_id, subscription_id=sub.id, channel=sub.channel,
                           target=redacted)


# --- tasks ---------------------------------------------------------------------------------


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
    door = _door(request)
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
                          subscriptions=[_subscription_out(rt, task_id, s) for s in subs],
                          subscriptions_added=added)
    return json_response(created, 201 if started.new else 200, {"Location": url})


async def add_subscription(request: Request) -> Response:
    door = _door(request)
    caller = door.authorize(request, "subscribe")
    task_id = _task_id_param(request)
    key = workflow_key(caller, task_id)
    spec = parse_body(SubscriptionCreate, await read_body(request, door.settings.max_body_bytes))
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
    return json_response(SubscriptionOut.model_validate(result), 201)


async def get_task(request: Request) -> Response:
    door = _door(request)
    caller = door.authorize(request, "read")
    task_id = _task_id_param(request)
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
    door = _door(request)
    caller = door.authorize(request, "subscribe")
    task_id = _task_id_param(request)
    key = workflow_key(caller, task_id)
    sid = str(request.path_params["subscription_id"])
    missing = ApiError(404, "not_found", f"task {task_id!r} has no subscription {sid!r}")
    if not _SUBSCRIPTION_ID.fullmatch(sid):
        raise missing
    status = await door.restate.status(key)
    found = next((r for r in status.deliveries if r.subscription_id == sid), None)
    if found is None:
        raise missing
    if found.state is not DeliveryState.CANCELLED:
        _still_waiting(found)
        invocation = found.invocation_id or await door.restate.find_notify_invocation(
            key, sid)
        if invocation is None and found.state is DeliveryState.WAITING:
            # a subscriber of the task itself, which starts it when the outcome is known
            invocation = await door.restate.claim_notify(key, sid)
        if invocation:  # cancelled first, so it cannot deliver after being marked
            await door.restate.cancel_invocation(invocation)
        found = await door.restate.mark_cancelled(key, found)
        _still_waiting(found)
        # delivered (or failed) in the meantime: its last receipt is kept by the task itself
        now = await door.restate.status(key)
        found = next((r for r in now.deliveries if r.subscription_id == sid), found)
        _still_waiting(found)
        log.info("subscription %s of task %s cancelled", sid, key)
    return json_response(found)


def _still_waiting(receipt: DeliveryReceipt) -> None:
    if receipt.state.final and receipt.state is not DeliveryState.CANCELLED:
        raise ApiError(409, "conflict", f"subscription {receipt.subscription_id} is already "
                                        f"{receipt.state.value}: there is nothing to cancel")


# --- inbound hooks -------------------------------------------------------------------------


async def receive_hook(request: Request) -> Response:
    door = _door(request)
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


# --- health, readiness, the document -------------------------------------------------------


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    reason = await _door(request).restate.readiness()
    if reason is not None:
        return json_response(Readiness(status="not_ready", reason=reason), 503)
    return json_response(Readiness(status="ready"))


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


_TASK = PathParam("task_id", TASK_ID_PATTERN, "The task id (the workflow key).")

OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/v1/tasks", "createTask", "Start a task", "submit",
              {201: ("Started.", TaskCreated), 200: ("Started before: the same task.",
                                                     TaskCreated)},
              errors=(400, 401, 403, 408, 413, 422), request=TaskCreate,
              headers=(Header("Idempotency-Key", "The same key (per API key) is the same "
                              "task: a repeat answers 200 with it instead of starting another."),),
              response_headers={201: ("Location",), 200: ("Location",)},
              description="Idempotent: the task id, else the Idempotency-Key header, names the "
                          "task; a task runs once per id. Ids starting with hook- belong to "
                          "inbound hooks (422). A key of a tenant names its tenant's tasks, "
                          "which other keys cannot see (404)."),
    Operation("get", "/v1/tasks/{task_id}", "getTask", "A task's state, result and deliveries",
              "read", {200: ("The task.", TaskStatus)}, errors=(401, 403, 404),
              params=(_TASK,)),
    Operation("post", "/v1/tasks/{task_id}/subscriptions", "addSubscription",
              "Subscribe to a task, at any time", "subscribe",
              {201: ("Subscribed (the same subscriber again is the same subscription).",
                     SubscriptionOut)},
              errors=(400, 401, 403, 404, 408, 413, 422), request=SubscriptionCreate,
              params=(_TASK,),
              description="After the task finished, the outcome is delivered at once."),
    Operation("delete", "/v1/tasks/{task_id}/subscriptions/{subscription_id}",
              "cancelSubscription", "Cancel a subscription still waiting", "subscribe",
              {200: ("Cancelled: the receipt.", DeliveryReceipt)},
              errors=(401, 403, 404, 409),
              params=(_TASK, PathParam("subscription_id", SUBSCRIPTION_ID_PATTERN,
                                       "The subscription id (s_...)."))),
    Operation("post", "/v1/hooks/{source}", "receiveHook", "Inbound webhook of a source", None,
              {201: ("A task was started.", TaskCreated),
               200: ("A retry of a delivery seen before: the same task.", TaskCreated)},
              errors=(400, 401, 404, 408, 413, 422),
              params=(PathParam("source", _HOOK_NAME, "A source named in hooks:."),),
              headers=(Header("webhook-id", "Standard Webhooks: the delivery id."),
                       Header("webhook-timestamp", "Standard Webhooks: unix seconds."),
                       Header("webhook-signature", "Standard Webhooks: v1,<base64> ...",
                              max_length=4096)),
              response_headers={201: ("Location",), 200: ("Location",)},
              description="Verified by the source's scheme (Standard Webhooks, or its HMAC "
                          "header); a signed timestamp more than 5 minutes off is refused; "
                          "what the signature covers names the task (the delivery id when "
                          "signed or timestamped, else the body's digest), so neither a retry "
                          "nor a replay runs anything twice."),
    Operation("get", "/healthz", "healthz", "The process is up", None,
              {200: ("Up.", Health)}),
    Operation("get", "/readyz", "readyz", "Restate is reachable",
              None, {200: ("Ready.", Readiness), 503: ("Not ready, and why.", Readiness)}),
)


# --- the app -------------------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = {404: f"no such resource {request.url.path!r}",
               405: f"{request.method} is not allowed here"}.get(exc.status_code, exc.detail)
    return error_response(ApiError(exc.status_code, code, message, headers=exc.headers))


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HandlerRefused)
    return error_response(ApiError(422, "invalid_request", str(exc)))


async def _restate_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RestateFailed)
    # the details (Restate's internal URLs, its own messages) go to the log only
    log.error("%s %s: %s", request.method, _printable(request.url.path), exc)
    if not exc.reachable:
        return error_response(ApiError(503, "restate_unavailable", "Restate is not "
                                       "reachable; try again shortly",
                                       headers={"Retry-After": "1"}))
    return error_response(ApiError(502, "restate_error", "Restate answered unexpectedly; "
                                   "it has been logged"))


async def _unexpected(request: Request, exc: Exception) -> Response:
    body = ErrorBody(error="internal", message="unexpected error; it has been logged")
    return json_response(body, 500)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(text: object) -> str:
    """``text`` for a log line: control characters (a newline could forge a line) escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


class _ErrorBoundary:
    """The one place an unexpected error is caught: logged (its type and where, never the
    request's headers or body); the client got a JSON 500 from ``_unexpected``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # the single error boundary of the API
            log.error("%s %s failed: %s", scope.get("method"), _printable(scope.get("path")),
                      type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
            if not started:
                await _unexpected_raw(send)


async def _unexpected_raw(send: Send) -> None:
    body = ErrorBody(error="internal", message="unexpected error; it has been logged")
    data = body.model_dump_json().encode()
    await send({"type": "http.response.start", "status": 500,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def create_api(settings: ApiSettings, runtime: Runtime | Callable[[], Runtime],
               restate: RestateLink) -> tuple[ASGIApp, FrontDoor]:
    """The API's ASGI app and its state (swap ``door.settings`` to reload). ``runtime`` is
    the process's runtime, or a function returning the current one."""
    get_runtime = runtime if callable(runtime) else (lambda: runtime)
    door = FrontDoor(settings, get_runtime, restate)
    handlers: dict[str, Callable[[Request], Any]] = {
        "createTask": create_task, "getTask": get_task, "addSubscription": add_subscription,
        "cancelSubscription": cancel_subscription, "receiveHook": receive_hook,
        "healthz": healthz, "readyz": readyz,
    }
    routes = [Route(op.path, handlers[op.operation_id], methods=[op.method.upper()])
              for op in OPERATIONS]
    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    waiting = SingleFlight(restate.refresh_metrics, ttl=METRICS_REFRESH_SECONDS)
    routes.append(Route("/metrics", _metrics.metrics_endpoint(waiting), methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={
        ApiError: _api_error, HTTPException: _http_error, HandlerRefused: _refused,
        RestateFailed: _restate_failed, Exception: _unexpected,
    })
    app.state.door = door
    app.state.openapi = openapi_document(
        OPERATIONS, title="notification-gateway", version="1",
        description="Start agent tasks, subscribe to their outcome on any channel, follow "
                    "them. Errors are JSON: {error, message, fields}.",
    )
    boundary = _ErrorBoundary(app)
    traced = HttpServerSpans(boundary) if _trace.enabled() else boundary
    return BodyLimits(traced, lambda: door.settings.limits.body_timeout), door
