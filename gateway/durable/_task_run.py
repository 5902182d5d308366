"""``run``: a task's run, once per task id: journal the task and its routing, run the agent
durably, resolve (or reject) the promise ``result``, start one ``on_notify`` per own subscriber.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from pydantic_ai.exceptions import AgentRunError, UserError
from restate import (
    RunOptions,
    TerminalError,
    WorkflowContext,
)

from gateway.core import (
    Subscription,
    Task,
    TaskRequest,
    TaskResult,
    TaskState,
    UserInputError,
)
from gateway.durable import _task_log
from gateway.durable._bodies import BodySerde, RunOutcome, SubscriberBody, TaskBody, TaskFailed
from gateway.durable._input import checked_subscription, describe
from gateway.durable._notify import on_notify
from gateway.durable._receipts import Receipts, claim_receipts, waiting_receipt
from gateway.durable._services import (
    OWN_SUBSCRIBERS_STATE,
    RESULT_PROMISE,
    RETENTION,
    log,
    workflow,
)
from gateway.durable._untrusted import STANDING_STATE, standing_fingerprint
from gateway.durable.runtime import Runtime, current_runtime
from gateway.durable.task_index import record_task
from gateway.observability import metrics as _metrics
from gateway.observability import trace as _trace

# --- run -----------------------------------------------------------------------------------


@workflow.main(input_serde=BodySerde(TaskBody), workflow_retention=RETENTION)
async def run(ctx: WorkflowContext, body: TaskBody) -> RunOutcome:
    """Start a task: ``"a prompt"`` or ``{"prompt": ..., "agent": ..., "labels": ...,
    "subscriptions": [...]}``."""
    rt = current_runtime()
    task_id = ctx.key()
    expected = 'a JSON string prompt or {"prompt": "...", "subscriptions": [...]}'
    problem: str | None = None
    try:
        request = TaskRequest.parse(body.value("run", expected))
        runner = rt.agent(request.agent)
        subs = [checked_subscription(rt, task_id, s, untrusted=True)
                for s in request.subscriptions]
    except (ValidationError, UserInputError, ValueError) as exc:
        problem = describe(exc)
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

    # a coroutine: the SDK runs it in the event loop (a plain function would hop to a
    # thread and back, two wake-ups of the loop per task for a few microseconds of routing)
    async def accept() -> dict[str, Any]:
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
    # their "waiting" receipts: one one-way call for all of them, before any is started
    if chosen:
        ctx.object_send(claim_receipts, key=task_id, arg=Receipts(
            [waiting_receipt(rt, sub, submitted_at) for sub in chosen.values()]))
    ctx.set(OWN_SUBSCRIBERS_STATE, list(chosen))  # what a repeat submit need not add again
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
    return RunOutcome(result)


def _start_notify(ctx: WorkflowContext, task_id: str, subs: list[Subscription],
                  headers: dict[str, str]) -> None:
    """One ``on_notify`` per subscriber, keyed by its id: never two for the same one (a
    subscriber cancelled while the task ran has one already, which ended at once)."""
    for sub in subs:
        sub = sub.model_copy(update={"from_task": True})
        ctx.workflow_send(on_notify, task_id, SubscriberBody.of_subscription(sub),
                          idempotency_key=sub.id,
                          headers=headers)




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
                span: _trace.HandlerTrace | None) -> RunOutcome:
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
    return RunOutcome(TaskFailed(task_id=ctx.key(), state=TaskState.FAILED, error=error))
