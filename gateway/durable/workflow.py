"""The Restate workflow ``AsyncNotificationsAgent`` and the receipts object ``TaskDeliveries``.

``run`` (once per task id) journals the task, sends one ``on_notify`` per subscription, runs
the agent durably and resolves the durable promise ``result`` (rejects it on failure).
``on_notify`` (shared, any number, any time) awaits the promise - suspended, at no cost -
renders the message and delivers it: every attempt is a journaled step, waits between
attempts are durable timers, and a channel that gives up hands over to the next fallback.
Receipts go to the virtual object ``TaskDeliveries`` keyed by task id, because shared
workflow handlers cannot write workflow state.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import timedelta
from typing import Any

import restate
from pydantic import BaseModel, ValidationError
from pydantic_ai.exceptions import AgentRunError, UserError
from restate import (
    DurablePromise,
    InvocationRetryPolicy,
    ObjectContext,
    ObjectSharedContext,
    RunOptions,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)
from restate.asyncio import wait_completed
from restate.serde import BytesSerde

from gateway.channels import TaskView, format_validation_error
from gateway.core import (
    AttemptRecord,
    DeliveryReceipt,
    DeliveryState,
    PermanentDeliveryError,
    Subscription,
    Target,
    Task,
    TaskRequest,
    TaskResult,
    TaskState,
    TaskStatus,
    TransientDeliveryError,
    UserInputError,
    redactor,
    secret_values,
)
from gateway.core.rejection import rejected_receipt
from gateway.durable import _task_log
from gateway.durable._untrusted import STANDING_STATE, standing_fingerprint, untrusted_problem
from gateway.durable.runtime import Runtime, current_runtime
from gateway.durable.task_index import record_task
from gateway.observability import bind_delivery
from gateway.observability import metrics as _metrics
from gateway.observability import trace as _trace

__all__ = ["RESULT_PROMISE", "deliveries", "workflow"]

log = restate.getLogger("gateway.workflow")  # type: ignore[no-untyped-call]  # SDK: untyped

RESULT_PROMISE = "result"
#: + subscription id: the last receipt of one of the task's own subscribers, kept in the
#: task's workflow as a durable promise (a shared handler may complete one): one write, and
#: no receipts invocation per delivery. The receipts object keeps the ones before it
#: (retrying, still running) and every receipt of a subscriber added later
FINAL_RECEIPT_PROMISE = "receipt:"
RETENTION = timedelta(days=30)
RAW = BytesSerde()

#: How Restate retries a handler attempt that failed (the gateway process died, a deploy):
#: quickly at first, then every 5 s for about 14 hours before pausing the invocation for an
#: operator to resume - never dropping it. Delivery retries have their own per-channel policy.
INVOCATION_RETRY = InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=100), exponentiation_factor=2.0,
    max_interval=timedelta(seconds=5), max_attempts=10_000, on_max_attempts="pause",
)

workflow = Workflow("AsyncNotificationsAgent", invocation_retry_policy=INVOCATION_RETRY)
deliveries = VirtualObject("TaskDeliveries", invocation_retry_policy=INVOCATION_RETRY)


# --- input -------------------------------------------------------------------------------


def _json_body(body: bytes | None, handler: str, expected: str) -> Any:
    if not body:
        raise TerminalError(f"{handler}: the request body is empty; send {expected}", 400)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise TerminalError(
            f"{handler}: the request body is not valid JSON ({exc}); send {expected}", 400
        ) from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return format_validation_error(exc)
    return str(exc)


def checked_subscription(rt: Runtime, task_id: str, raw: object, *,
                         untrusted: bool = False) -> Subscription:
    """Parse and validate a subscriber against this gateway's channels; TerminalError(400),
    or 403 for what an ``untrusted`` subscriber (not from the YAML file) may not use."""
    try:
        sub = Subscription.parse(raw)
        target = rt.channels.check(sub)
        fallback = [t.model_copy(update={"target": rt.channels.check(t)}) for t in sub.fallback]
    except (ValidationError, UserInputError, ValueError) as exc:
        raise TerminalError(f"invalid subscriber: {_describe(exc)}", 400) from None
    sub = sub.model_copy(update={"target": target, "fallback": fallback})
    problem = untrusted_problem(rt, sub) if untrusted else None
    if problem is not None:
        raise TerminalError(f"subscriber refused: {problem}", 403)
    # its id derived from what it is, once normalised: the same subscriber is one subscription
    return sub.identified(task_id)


def _encode(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_defaults=True).encode()


# --- run -----------------------------------------------------------------------------------


@workflow.main(input_serde=RAW, workflow_retention=RETENTION)
async def run(ctx: WorkflowContext, body: bytes) -> dict[str, Any]:
    """Start a task: ``"a prompt"`` or ``{"prompt": ..., "agent": ..., "labels": ...,
    "subscriptions": [...]}``."""
    rt = current_runtime()
    task_id = ctx.key()
    expected = 'a JSON string prompt or {"prompt": "...", "subscriptions": [...]}'
    problem: str | None = None
    try:
        request = TaskRequest.parse(_json_body(body, "run", expected))
        runner = rt.agent(request.agent)
        subs = [checked_subscription(rt, task_id, s, untrusted=True)
                for s in request.subscriptions]
    except (ValidationError, UserInputError, ValueError) as exc:
        problem = _describe(exc)
    except TerminalError as exc:
        problem = exc.message
    if problem is not None:
        ctx.set("state", TaskState.FAILED.value)
        ctx.set("error", f"invalid task: {problem}")
        if not _trace.replaying():
            _metrics.TASKS_FINISHED.labels("unknown", "invalid").inc()
        _task_log.task_finished("unknown", "failed", 0.0, error=f"invalid task: {problem}")
        await ctx.promise(RESULT_PROMISE).reject(f"invalid task: {problem}", 400)
        raise TerminalError(f"invalid task: {problem}", 400)

    ctx.set("state", TaskState.RUNNING.value)
    # the task's trace context: journaled only when the request brought one (see _trace)
    invocation = ctx.request()
    traceparent = invocation.headers.get(_trace.TRACEPARENT)
    if traceparent:
        ctx.set("trace", traceparent)
    span = _trace.start_run(task_id, invocation.id, invocation.headers, time.time(),
                            request.agent)

    def accept() -> dict[str, Any]:
        now = time.time()
        accepted = Task(task_id=task_id, prompt=request.prompt, agent=request.agent,
                        labels=request.labels, submitted_at=now)
        return {"submitted_at": now, "routed": _route(rt, accepted, span)}

    # when it was submitted and its standing subscriptions, in one journaled step (one round
    # trip): a configuration change cannot alter who was chosen
    accepted = await ctx.run_typed("route", accept, RunOptions(type_hint=dict[str, Any],
                                                               max_attempts=3))
    submitted_at = float(accepted["submitted_at"])
    routed: list[dict[str, Any]] = accepted["routed"]
    if span is not None:
        span.start_at(submitted_at)
    task = Task(task_id=task_id, prompt=request.prompt, agent=request.agent,
                labels=request.labels, submitted_at=submitted_at)
    ctx.set("task", task.model_dump(mode="json"))
    if not _trace.replaying():
        _metrics.TASKS_STARTED.labels(request.agent).inc()
    if runner.spec.deadline:
        ctx.set("deadline_at", submitted_at + runner.spec.deadline)
    chosen = {sub.id: sub for sub in subs}
    named = {(sub.channel, sub.target) for sub in subs}  # named at submit: that one is kept
    for raw in routed:
        sub = Subscription.model_validate(raw)
        if (sub.channel, sub.target) not in named:
            chosen.setdefault(sub.id, sub)
    if routed:  # what on_notify accepts although the body did not come from the YAML file
        ctx.set(STANDING_STATE, [standing_fingerprint(Subscription.model_validate(raw))
                                 for raw in routed])
    # their "waiting" receipts are part of the task's state: one write, not one per subscriber
    ctx.set("subscriptions", [_waiting(rt, sub, submitted_at) for sub in chosen.values()])
    record_task(ctx, task_id, submitted_at, task.agent, task.labels,
                [s.channel for s in chosen.values()])  # the task index: one one-way call
    _task_log.task_accepted(task.agent, len(chosen), len(routed))
    send_headers = _trace.notify_headers(task_id, traceparent, submitted_at)
    # a subscriber owed a still-running notice at the deadline waits from the start; the
    # others are started once the outcome is known, so a running task holds no invocation,
    # stream or memory per subscriber and nothing is suspended and replayed to deliver it
    early = [s for s in chosen.values()
             if runner.spec.deadline and "timed_out" in s.outcomes]
    later = [s for s in chosen.values() if s not in early]
    _start_notify(ctx, task_id, early, send_headers)

    _task_log.agent_started(task.agent, runner.model_name)
    try:
        output = await runner.run(request.prompt, submitted_at=submitted_at)
    except TerminalError as exc:
        failed = await _fail(ctx, rt, exc.message, task, span)
        _start_notify(ctx, task_id, later, send_headers)
        return failed
    except (AgentRunError, UserError) as exc:
        failed = await _fail(ctx, rt, f"{type(exc).__name__}: {exc}", task, span)
        _start_notify(ctx, task_id, later, send_headers)
        return failed

    completed_at = await ctx.time()
    result = TaskResult(task_id=task_id, agent=task.agent, prompt=task.prompt, labels=task.labels,
                        output=output, model=runner.model_name, completed_at=completed_at)
    payload = result.model_dump(mode="json")
    ctx.set("result", payload)
    ctx.set("state", TaskState.SUCCEEDED.value)
    if not _trace.replaying():
        _metrics.TASKS_FINISHED.labels(task.agent, "succeeded").inc()
    _task_log.task_finished(task.agent, "succeeded", completed_at - submitted_at)
    with _trace.promise("succeeded"):
        # journaled when made, before the sends below; not awaited: no round trip while the
        # task holds one of the server's invocation slots
        ctx.promise(RESULT_PROMISE, type_hint=dict).resolve(payload)
    _start_notify(ctx, task_id, later, send_headers)
    if span is not None:
        span.attributes["gateway.task.outcome"] = "succeeded"
        span.finish()
    return payload


def _start_notify(ctx: WorkflowContext, task_id: str, subs: list[Subscription],
                  headers: dict[str, str]) -> None:
    """One ``on_notify`` per subscriber, keyed by its id: never two for the same one (a
    subscriber cancelled while the task ran has one already, which ended at once)."""
    for sub in subs:
        sub = sub.model_copy(update={"from_task": True})
        ctx.workflow_send(on_notify, task_id, _encode(sub), idempotency_key=sub.id,
                          headers=headers)


def _waiting(rt: Runtime, sub: Subscription, at: float) -> dict[str, Any]:
    assert sub.id is not None
    inst = rt.channels.get(sub.channel)
    return DeliveryReceipt(
        subscription_id=sub.id, channel=sub.channel,
        target=inst.channel.redact_target(sub.target), state=DeliveryState.WAITING,
        created_at=at, updated_at=at, address=inst.channel.reveal_target(sub.target),
    ).model_dump(mode="json", exclude_none=True)


def _route(rt: Runtime, task: Task,
           span: _trace.HandlerTrace | None = None) -> list[dict[str, Any]]:
    """The standing subscriptions of ``task`` that this gateway's channels accept."""
    with _trace.journaled("route", span) as routing:
        out = _route_checked(rt, task)
        routing.set_attribute("gateway.subscription.count", len(out))
    return out


def _route_checked(rt: Runtime, task: Task) -> list[dict[str, Any]]:
    out = []
    for sub in rt.route(task):
        try:
            target = rt.channels.check(sub)
            fallback = [t.model_copy(update={"target": rt.channels.check(t)})
                        for t in sub.fallback]
        except UserInputError as exc:
            log.error("standing subscription %s skipped for task %s: %s", sub.source,
                      task.task_id, rt.redact(str(exc)))
            continue
        out.append(sub.model_copy(update={"target": target, "fallback": fallback})
                   .identified(task.task_id).model_dump(mode="json", exclude_defaults=True))
    return out


async def _fail(ctx: WorkflowContext, rt: Runtime, error: str, task: Task,
                span: _trace.HandlerTrace | None) -> dict[str, Any]:
    error = rt.redact(error)
    agent = task.agent
    ctx.set("error", error)
    completed_at = await ctx.time()
    ctx.set("completed_at", completed_at)
    ctx.set("state", TaskState.FAILED.value)
    if not _trace.replaying():
        _metrics.TASKS_FINISHED.labels(agent, "failed").inc()
    _task_log.task_finished(agent, _task_log.outcome_of_failure(error),
                            completed_at - task.submitted_at, error=error)
    with _trace.promise("failed"):
        rejected = ctx.promise(RESULT_PROMISE).reject(error)
    await rejected
    if span is not None:
        span.attributes["gateway.task.outcome"] = "failed"
        span.finish(error="agent_failed")
    return {"task_id": ctx.key(), "state": TaskState.FAILED.value, "error": error}


# --- subscribe / status --------------------------------------------------------------------


@workflow.handler(input_serde=RAW)
async def subscribe(ctx: WorkflowSharedContext, body: bytes) -> dict[str, Any]:
    """Validate a subscriber now (4xx on bad input) and start its ``on_notify``."""
    rt = current_runtime()
    sub = checked_subscription(
        rt, ctx.key(), _json_body(body, "subscribe", '"me@example.com" or "CHANNEL:TARGET"'),
        untrusted=True,
    )
    # in the task's trace, linked to this request's
    headers = await _later_headers(ctx)
    ctx.workflow_send(on_notify, ctx.key(), _encode(sub), idempotency_key=sub.id,
                      headers=headers)
    inst = rt.channels.get(sub.channel)
    return {"task_id": ctx.key(), "subscription_id": sub.id, "channel": sub.channel,
            "target": inst.channel.redact_target(sub.target)}


async def _later_headers(ctx: WorkflowSharedContext) -> dict[str, str]:
    """The trace headers of a send of ``on_notify`` for a subscriber added after the start."""
    task_trace = await ctx.get("trace", type_hint=str)
    return _trace.subscribe_headers(ctx.key(), task_trace,
                                    ctx.request().headers.get(_trace.TRACEPARENT))


#: how long ``add_subscribers`` waits for a task that was sent but has not taken its own
#: subscribers yet (the moment between a submit and its run's first steps)
_ACCEPT_POLLS, _ACCEPT_POLL = 100, timedelta(milliseconds=100)


@workflow.handler(input_serde=RAW, enable_lazy_state=True)
async def add_subscribers(ctx: WorkflowSharedContext, body: bytes) -> dict[str, Any]:
    """A repeat submit's subscribers (a JSON list): those the task does not have yet are
    subscribed as ``subscribe`` does; ``added`` and ``existing`` say which were which."""
    rt = current_runtime()
    raw = _json_body(body, "add_subscribers", "a JSON list of subscribers")
    if not isinstance(raw, list):
        raise TerminalError("add_subscribers: send a JSON list of subscribers", 400)
    subs = list({s.id: s for s in (checked_subscription(rt, ctx.key(), r) for r in raw)}.values())
    own = await _own_subscription_ids(ctx)
    now = await ctx.time()
    others = [_waiting(rt, s, now) for s in subs if s.id not in own]
    headers = await _later_headers(ctx)
    claimed = set(await ctx.object_call(claim_receipts, key=ctx.key(), arg=others,
                                        headers=headers) if others else [])
    added, existing = [], []
    for sub in subs:
        inst = rt.channels.get(sub.channel)
        out = {"task_id": ctx.key(), "subscription_id": sub.id, "channel": sub.channel,
               "target": inst.channel.redact_target(sub.target)}
        if sub.id in claimed:
            ctx.workflow_send(on_notify, ctx.key(), _encode(sub), idempotency_key=sub.id,
                              headers=headers)
            added.append(out)
        else:
            existing.append(out)
    return {"task_id": ctx.key(), "added": added, "existing": existing}


async def _own_subscription_ids(ctx: WorkflowSharedContext) -> set[str]:
    """The ids of the subscribers the task took with it (waiting, bounded, until its run has
    journaled them: a repeat can come right after the first submit)."""
    for _ in range(_ACCEPT_POLLS):
        own = await ctx.get("subscriptions", type_hint=list)
        if own is not None:
            return {str(r["subscription_id"]) for r in own}
        if await ctx.get("state", type_hint=str) == TaskState.FAILED.value:
            return set()  # an invalid task: it took none
        await ctx.sleep(_ACCEPT_POLL, name="task accepted?")
    raise TerminalError("the task has not started yet: try the repeat again in a moment", 503)


# suspended while it waits for the receipts, so it holds none of the server's invocation
# slots (bounded: see gateway.local.engine) that the receipts' own handler may need
@workflow.handler(inactivity_timeout=timedelta(seconds=1))
async def status(ctx: WorkflowSharedContext) -> dict[str, Any]:
    """The task's state, its result or error, and every delivery receipt."""
    task_raw = await ctx.get("task", type_hint=dict)
    state = await ctx.get("state", type_hint=str) or TaskState.UNKNOWN.value
    result_raw = await ctx.get("result", type_hint=dict)
    error = await ctx.get("error", type_hint=str)
    completed_at = await ctx.get("completed_at", type_hint=float)
    waiting: list[dict[str, Any]] = await ctx.get("subscriptions", type_hint=list) or []
    asked = ctx.request().headers.get(_trace.TRACEPARENT)  # the read joins the request's trace
    receipts = await ctx.object_call(list_receipts, key=ctx.key(), arg=None, headers={
        _trace.TRACEPARENT: asked or _trace.task_traceparent(ctx.key(), "status")})
    recorded = {r["subscription_id"] for r in receipts}
    merged = [r for r in waiting if r["subscription_id"] not in recorded] + receipts
    own = {r["subscription_id"] for r in waiting}
    peeks = {i: ctx.promise(FINAL_RECEIPT_PROMISE + r["subscription_id"], type_hint=dict).peek()
             for i, r in enumerate(merged) if r["subscription_id"] in own}  # asked at once
    for i, peek in peeks.items():
        final = await peek
        if final:  # created when the subscriber was: like the receipts object keeps it
            merged[i] = {**final, "created_at": merged[i]["created_at"]}
    merged.sort(key=lambda r: (r["created_at"], r["subscription_id"]))
    if state == TaskState.UNKNOWN.value and merged:  # subscribers before the task's run
        state = TaskState.NOT_STARTED.value
    out = TaskStatus(task_id=ctx.key(), state=TaskState(state), error=error,
                     deliveries=[DeliveryReceipt.model_validate(r) for r in merged])
    if task_raw:
        task = Task.model_validate(task_raw)
        out = out.model_copy(update={"agent": task.agent, "prompt": task.prompt,
                                     "labels": task.labels, "submitted_at": task.submitted_at})
    if result_raw:
        result = TaskResult.model_validate(result_raw)
        out = out.model_copy(update={"output": result.output, "completed_at": result.completed_at})
    elif completed_at:
        out = out.model_copy(update={"completed_at": completed_at})
    return out.model_dump(mode="json")


# --- on_notify -----------------------------------------------------------------------------


class AttemptOutcome(BaseModel):
    """One journaled delivery attempt."""

    ok: bool
    at: float
    permanent: bool = False
    error: str | None = None
    provider_status: int | None = None
    retry_after: float | None = None


def message_id(task_id: str, subscription_id: str, kind: str) -> str:
    digest = hashlib.sha256(f"{task_id}\x00{subscription_id}\x00{kind}".encode()).hexdigest()
    return "msg_" + digest[:32]


@workflow.handler(input_serde=RAW, enable_lazy_state=True,
                  idempotency_retention=timedelta(days=7),
                  # a subscriber waiting for the result is suspended after 1 s without
                  # activity instead of Restate's default minute: waiting then holds no
                  # stream, coroutine or memory in the gateway process
                  inactivity_timeout=timedelta(seconds=1))
async def on_notify(ctx: WorkflowSharedContext, body: bytes) -> dict[str, Any]:
    """Tell one subscriber the task's outcome: ``"me@example.com"``, ``"CHANNEL:TARGET"`` or
    ``{"channel": ..., "target": ..., "options": {...}, "fallback": [...]}``."""
    rt = current_runtime()
    try:
        raw = _json_body(body, "on_notify", '"me@example.com" or "CHANNEL:TARGET" or an object')
    except TerminalError as exc:
        await _reject(ctx, rt, (body or b"").decode(errors="replace")[:2048], exc.message)
        raise
    if isinstance(raw, dict) and list(raw) == ["cancelled"]:
        # a task's own subscriber cancelled before the task finished: this invocation holds
        # its idempotency key, so the task's own start of it finds this one and sends nothing
        return {"subscription_id": str(raw["cancelled"]),
                "state": DeliveryState.CANCELLED.value}
    try:
        sub = checked_subscription(rt, ctx.key(), raw)
        await _refuse_untrusted(ctx, rt, sub)
    except TerminalError as exc:
        await _reject(ctx, rt, raw, exc.message)
        raise
    assert sub.id is not None
    if _INGRESS_PATH in ctx.request().headers:
        # sent straight to the ingress (the gateway's own sends are keyed by the subscription
        # id already): started again under that key, so the same subscriber is told once
        ctx.workflow_send(on_notify, ctx.key(), _encode(sub), idempotency_key=sub.id,
                          headers=await _later_headers(ctx))
        return {"task_id": ctx.key(), "subscription_id": sub.id,
                "state": DeliveryState.WAITING.value}
    bind_delivery(sub.id, sub.channel)
    span = _trace.start_notify(ctx, sub.id, sub.channel)
    try:
        receipt = await _notify(ctx, rt, sub)
    except TerminalError as exc:
        if not _is_cancellation(exc):
            raise
        # cancelled (DELETE of the subscription, or an operator): nothing more is sent
        receipt = _record(ctx, rt, sub, DeliveryState.CANCELLED, at=await ctx.time()).model_dump(
            mode="json")
    if sub.from_task:
        _settle(ctx, receipt)
    _trace.finish_notify(span, receipt)
    return receipt


async def _refuse_untrusted(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription) -> None:
    """TerminalError(403) for a subscriber an untrusted caller may not use, unless it is one
    of the YAML file's standing subscriptions that ``run`` routed for this task."""
    problem = untrusted_problem(rt, sub)
    if problem is None:
        return
    if sub.from_task:
        standing = await ctx.get(STANDING_STATE, type_hint=list[str]) or []
        if standing_fingerprint(sub) in standing:
            return
    raise TerminalError(f"subscriber refused: {problem}", 403)
async def _reject(ctx: WorkflowSharedContext, rt: Runtime, raw: object, reason: str) -> None:
    """Record a refused subscriber where ``status`` reads receipts: sent with ``/send``, its
    sender has had a 202 and would never hear of the refusal otherwise."""
    rejected = rejected_receipt(ctx.key(), raw, reason, await ctx.time(), rt.redact,
                                ctx.request().id)
    ctx.object_send(record_receipt, key=ctx.key(), arg=rejected)


#: set by the Restate server on an invocation that came through its ingress
_INGRESS_PATH = "x-restate-ingress-path"


def _settle(ctx: WorkflowSharedContext, receipt: dict[str, Any]) -> None:
    """Keep the last receipt of one of the task's own subscribers (FINAL_RECEIPT_PROMISE).
    Journaled when made; not awaited, so the invocation ends without another round trip. If
    one was kept before (the subscriber started twice by hand, without its idempotency key),
    the first stays."""
    ctx.promise(FINAL_RECEIPT_PROMISE + receipt["subscription_id"], type_hint=dict).resolve(
        receipt)


def _is_cancellation(exc: TerminalError) -> bool:
    """The SDK raises ``TerminalError("cancelled", 409)`` where the cancel signal arrives."""
    return exc.status_code == 409 and exc.message == "cancelled"


async def _notify(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription) -> dict[str, Any]:
    promise: DurablePromise[dict[str, Any]] = ctx.promise(RESULT_PROMISE)
    # a subscription of the task itself has its waiting receipt in the task's state already;
    # one added later records its own, unless the result is there (then it is delivered now)
    settled = False
    if not sub.from_task or "timed_out" in sub.outcomes:
        try:
            settled = await promise.peek() is not None
        except TerminalError:
            settled = True
    outcome_future = promise.value()
    waiting_since: float | None = None
    if not settled and (not sub.from_task or "timed_out" in sub.outcomes):
        waiting_since = await ctx.time()
        if not sub.from_task:
            _record(ctx, rt, sub, DeliveryState.WAITING, at=waiting_since)
        if "timed_out" in sub.outcomes:
            await _notice_at_deadline(ctx, rt, sub, outcome_future, waiting_since)
    try:
        result = TaskResult.model_validate(await outcome_future)
    except TerminalError as exc:
        if _is_cancellation(exc):
            raise
        _trace.waited(waiting_since, settled, "failed")
        return await _deliver_failure(ctx, rt, sub, exc.message)
    _trace.waited(waiting_since, settled, "succeeded")
    view = TaskView(task_id=result.task_id, agent=result.agent, prompt=result.prompt,
                    labels=result.labels, output=result.output, completed_at=result.completed_at)
    if "succeeded" not in sub.outcomes:
        return _skip(ctx, rt, sub, result.completed_at)
    return await _deliver(ctx, rt, sub, "result", view)


async def _notice_at_deadline(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription,
                              outcome_future: Any, now: float) -> None:
    deadline_at = await ctx.get("deadline_at", type_hint=float)
    if not deadline_at:
        return
    timer = ctx.sleep(timedelta(seconds=max(0.0, float(deadline_at) - now)), name="deadline")
    done, _ = await wait_completed(outcome_future, timer)
    if outcome_future in done:
        return
    view = await _task_view(ctx)
    await _deliver(ctx, rt, sub, "still_running", view)


async def _task_view(ctx: WorkflowSharedContext, error: str | None = None) -> TaskView:
    task_raw = await ctx.get("task", type_hint=dict)
    if task_raw:
        task = Task.model_validate(task_raw)
        return TaskView(task_id=task.task_id, agent=task.agent, prompt=task.prompt,
                        labels=task.labels, error=error)
    return TaskView(task_id=ctx.key(), agent="unknown", prompt="", error=error)


async def _deliver_failure(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription,
                           error: str) -> dict[str, Any]:
    view = await _task_view(ctx, rt.redact(error))
    if "failed" not in sub.outcomes:
        return _skip(ctx, rt, sub, await ctx.time())
    return await _deliver(ctx, rt, sub, "failure", view)


def _skip(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription, at: float) -> dict[str, Any]:
    receipt = _record(ctx, rt, sub, DeliveryState.SKIPPED, at=at)
    return receipt.model_dump(mode="json")


async def _deliver(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription, kind: Any,
                   view: TaskView) -> dict[str, Any]:
    """Try the subscription's channel, then each fallback; every attempt journaled."""
    assert sub.id is not None
    mid = message_id(view.task_id, sub.id, kind)
    attempts = 0
    last_error: str | None = None
    last_status: int | None = None
    at = 0.0
    history: list[AttemptRecord] = []  # every attempt, kept in the receipt
    chain: list[Target] = [sub, *sub.fallback]
    span = _trace.current()
    result_at = view.completed_at if kind == "result" else None
    for step, target in enumerate(chain):
        if step:
            bind_delivery(sub.id, target.channel)
            _trace.fallback(chain[step - 1].channel, target.channel, step)
        try:
            inst = rt.channels.get(target.channel)
            options = inst.effective_options(target.options)
            with _trace.render(target.channel, kind):
                message = rt.renderer.render(kind=kind, task=view, subscription=sub,
                                             target=target, channel=inst, message_id=mid)
        except UserInputError as exc:  # channel gone since subscribing, or a template failed
            last_error = f"{target.channel}: {rt.redact(str(exc))}"
            history.append(AttemptRecord(number=0, at=at or None, channel=target.channel,
                                         outcome="not-sent", error=last_error))
            log.warning("subscription %s: channel %s cannot deliver: %s", sub.id,
                        target.channel, last_error)
            continue
        policy = inst.retry
        attempt = _Attempt(rt, inst.sender, message, options, policy.attempt_timeout,
                           target.channel, mid, span, result_at)
        run_options: RunOptions[AttemptOutcome] = RunOptions(
            type_hint=AttemptOutcome, max_attempts=policy.max_attempts,
            initial_retry_interval=timedelta(seconds=policy.initial_interval),
            max_retry_interval=timedelta(seconds=policy.max_interval),
            retry_interval_factor=policy.factor,
        )
        for n in range(1, policy.max_attempts + 1):
            attempts += 1
            try:
                outcome = await ctx.run_typed(f"deliver {target.channel} #{n}", attempt.run,
                                              run_options, n)
            except TerminalError as exc:  # the channel raised something unexpected, retries spent
                if _is_cancellation(exc):
                    raise
                outcome = AttemptOutcome(ok=False, at=at, permanent=True,
                                         error=rt.redact(exc.message))
            at = outcome.at or at
            history.append(AttemptRecord(
                number=attempts, at=at, channel=target.channel,
                outcome="delivered" if outcome.ok else "failed",
                error=None if outcome.ok else f"{target.channel}: {outcome.error}",
                provider_status=outcome.provider_status))
            if outcome.ok:
                state = (DeliveryState.DELIVERED if step == 0
                         else DeliveryState.DELIVERED_BY_FALLBACK)
                # the current state has no error: earlier attempts' are in the history
                receipt = _record(ctx, rt, sub, state, at=at, kind=kind, attempts=attempts,
                                  channel_used=target.channel, history=history,
                                  provider_status=outcome.provider_status, message_id=mid,
                                  delivered_at=at, result_at=result_at)
                return receipt.model_dump(mode="json")
            last_error = f"{target.channel}: {outcome.error}"
            last_status = outcome.provider_status
            if outcome.permanent or n == policy.max_attempts:
                log.warning("subscription %s: %s gave up after attempt %d: %s", sub.id,
                            target.channel, n, last_error)
                break
            delay = policy.delay(n, outcome.retry_after)
            _record(ctx, rt, sub, DeliveryState.RETRYING, at=at, kind=kind, attempts=attempts,
                    channel_used=target.channel, last_error=last_error,
                    provider_status=last_status, message_id=mid, next_attempt_at=at + delay,
                    history=history)
            await ctx.sleep(timedelta(seconds=delay), name=f"retry {target.channel} #{n}")
    receipt = _record(ctx, rt, sub, DeliveryState.FAILED, at=at, kind=kind, attempts=attempts,
                      last_error=last_error, provider_status=last_status, message_id=mid,
                      history=history)
    return receipt.model_dump(mode="json")


class _Attempt:
    """The journaled step of delivery attempt number ``n`` of a message on one channel."""

    def __init__(self, rt: Runtime, channel: Any, message: Any, options: Any, timeout: float,
                 channel_name: str, message_id: str, span: _trace.HandlerTrace | None,
                 result_at: float | None) -> None:
        self.rt, self.channel, self.message, self.options = rt, channel, message, options
        self.timeout = timeout
        self.channel_name, self.message_id = channel_name, message_id
        self.span, self.result_at = span, result_at

    async def run(self, n: int) -> AttemptOutcome:
        with _trace.delivery(self.span, self.channel_name, n, self.message_id) as span:
            observe = _AttemptObserver(span, self.channel_name, self.result_at, n)
            return await _attempt_once(self.rt, self.channel, self.message, self.options,
                                       self.timeout, observe)


class _AttemptObserver:
    """Counts one delivery attempt and describes it on its span (inside the journaled step:
    once per attempt, never on a replay)."""

    def __init__(self, span: Any, channel: str, result_at: float | None,
                 attempt: int = 0) -> None:
        self.span = span
        self.channel = channel
        self.result_at = result_at
        self.attempt = attempt
        self.started = time.time()

    def __call__(self, outcome_label: str, outcome: AttemptOutcome) -> None:
        _metrics.DELIVERY_ATTEMPTS.labels(self.channel, outcome_label).inc()
        latency = None
        if outcome.ok and self.result_at is not None:
            latency = max(0.0, outcome.at - self.result_at)
            _metrics.DELIVERY_LATENCY.labels(self.channel).observe(latency)
        _task_log.attempted(self.channel, self.attempt, outcome_label, outcome.provider_status,
                            outcome.at - self.started, latency)
        _trace.attempted(self.span, outcome_label, outcome.provider_status, outcome.error)


def _error_text(rt: Runtime, options: Any, exc: Exception) -> str:
    """The error, without the process's secrets nor those of this delivery's own options
    (a subscriber's webhook secret)."""
    return redactor(secret_values(options))(rt.redact(str(exc)))


async def _attempt_once(rt: Runtime, channel: Any, message: Any, options: Any,
                        timeout: float, observe: _AttemptObserver | None = None
                        ) -> AttemptOutcome:
    import time

    try:
        receipt = await asyncio.wait_for(channel.send(message, options), timeout)
    except TransientDeliveryError as exc:
        label, outcome = "transient", AttemptOutcome(
            ok=False, at=time.time(), error=_error_text(rt, options, exc),
            provider_status=exc.status,
            retry_after=exc.retry_after)
    except PermanentDeliveryError as exc:
        label, outcome = "permanent", AttemptOutcome(
            ok=False, at=time.time(), permanent=True, error=_error_text(rt, options, exc),
            provider_status=exc.status)
    except TimeoutError:
        label, outcome = "timeout", AttemptOutcome(
            ok=False, at=time.time(), error=f"no answer within {timeout:g}s (attempt timeout)")
    else:
        label, outcome = "delivered", AttemptOutcome(
            ok=True, at=time.time(), provider_status=receipt.provider_status)
    if observe is not None:
        observe(label, outcome)
    return outcome


def _record(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription, state: DeliveryState, *,
            at: float, kind: str = "result", attempts: int = 0, channel_used: str | None = None,
            last_error: str | None = None, provider_status: int | None = None,
            message_id: str | None = None, delivered_at: float | None = None,
            next_attempt_at: float | None = None,
            history: list[AttemptRecord] | None = None,
            result_at: float | None = None) -> DeliveryReceipt:
    assert sub.id is not None
    inst = rt.channels.get(sub.channel)
    receipt = DeliveryReceipt(
        subscription_id=sub.id, channel=sub.channel,
        target=inst.channel.redact_target(sub.target), state=state, kind=kind,
        channel_used=channel_used, attempts=attempts, last_error=last_error,
        provider_status=provider_status, message_id=message_id, created_at=at, updated_at=at,
        delivered_at=delivered_at, invocation_id=ctx.request().id, history=list(history or []),
        next_attempt_at=next_attempt_at, address=inst.channel.reveal_target(sub.target),
    )
    if state.final and not _trace.replaying():
        _metrics.DELIVERIES.labels(sub.channel, state.value).inc()
        _task_log.delivery_finished(sub.channel, state.value, attempts, channel_used, kind,
                                    provider_status, None if result_at is None
                                    else max(0.0, at - result_at))
    if not (sub.from_task and state.final and kind != "still_running"):  # see _settle
        # no traceparent: restate-server starts a linked trace for a send whatever it
        # carries, the receipts make no spans, and headers are part of the journal an
        # on_notify waiting out a retry across an upgrade replays (see gateway._trace)
        ctx.object_send(record_receipt, key=ctx.key(), arg=receipt.model_dump(mode="json"))
    return receipt


# --- receipts ------------------------------------------------------------------------------

_RECEIPT = "r:"


@deliveries.handler(name="record")
async def record_receipt(ctx: ObjectContext, receipt: dict[str, Any]) -> None:
    """Store the newest receipt of a subscription (a final state is never overwritten by an
    earlier, non-final one of the same message kind)."""
    new = DeliveryReceipt.model_validate(receipt)
    key = _RECEIPT + new.subscription_id
    old_raw = await ctx.get(key, type_hint=dict)
    if old_raw:
        old = DeliveryReceipt.model_validate(old_raw)
        if old.state.final and not new.state.final and old.kind == new.kind:
            return
        new = new.model_copy(update={"created_at": old.created_at})
    ctx.set(key, new.model_dump(mode="json"))


@deliveries.handler(name="claim")
async def claim_receipts(ctx: ObjectContext, receipts: list[dict[str, Any]]) -> list[str]:
    """Record the waiting receipts of subscriptions the task has no receipt of; their ids
    (one at a time per task: two repeats at once cannot both add the same subscriber)."""
    claimed = []
    for receipt in receipts:
        key = _RECEIPT + str(receipt["subscription_id"])
        if await ctx.get(key, type_hint=dict) is None:
            ctx.set(key, receipt)
            claimed.append(str(receipt["subscription_id"]))
    return claimed


@deliveries.handler(name="cancel")
async def cancel_receipt(ctx: ObjectContext, receipt: dict[str, Any]) -> dict[str, Any]:
    """Mark a subscription cancelled unless its receipt is final already; the receipt as it
    now is. ``receipt`` is the caller's view of it (a task's own subscribers keep their waiting
    receipt in the task's state until they record one here). The caller cancels the
    subscription's ``on_notify`` invocation."""
    seen = DeliveryReceipt.model_validate(receipt)
    key = _RECEIPT + seen.subscription_id
    old_raw = await ctx.get(key, type_hint=dict)
    old = DeliveryReceipt.model_validate(old_raw) if old_raw else seen
    if old.state.final:
        return old.model_dump(mode="json")
    new = old.model_copy(update={"state": DeliveryState.CANCELLED, "updated_at": await ctx.time()})
    ctx.set(key, new.model_dump(mode="json"))
    return new.model_dump(mode="json")


@deliveries.handler(name="list", kind="shared")
async def list_receipts(ctx: ObjectSharedContext) -> list[dict[str, Any]]:
    """Every receipt of the task, oldest subscription first."""
    out: list[dict[str, Any]] = []
    for key in await ctx.state_keys():
        if key.startswith(_RECEIPT):
            value = await ctx.get(key, type_hint=dict)
            if value:
                out.append(value)
    out.sort(key=lambda r: (r["created_at"], r["subscription_id"]))
    return out
