"""A subscription's delivery: wait for the outcome, then try its channel and each fallback
in journaled attempts with durable timers between them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from restate import (
    DurablePromise,
    TerminalError,
    WorkflowSharedContext,
)
from restate.asyncio import wait_completed

from gateway.channels import TaskView
from gateway.core import (
    AttemptRecord,
    DeliveryReceipt,
    DeliveryState,
    Subscription,
    Target,
    Task,
    TaskResult,
    UserInputError,
)
from gateway.durable._attempts import Attempt, AttemptOutcome, message_id
from gateway.durable._cancelling import Cancelled, cancel_signal, unless_cancelled
from gateway.durable._receipts import record
from gateway.durable._services import (
    RESULT_PROMISE,
    log,
)
from gateway.durable.retry import step_options
from gateway.durable.runtime import Runtime
from gateway.observability import bind_delivery
from gateway.observability import trace as _trace


class AnotherStart(Exception):
    """Another start of the same subscriber claimed it first (see CLAIM_PROMISE): that one
    delivers, this one sends nothing."""


def is_cancellation(exc: TerminalError) -> bool:
    """The SDK raises ``TerminalError("cancelled", 409)`` where the cancel signal arrives."""
    return exc.status_code == 409 and exc.message == "cancelled"


async def await_and_deliver(ctx: WorkflowSharedContext, rt: Runtime,
                            sub: Subscription, claim: Any) -> dict[str, Any]:
    """Wait for the outcome, then deliver. ``claim``: the future of this start's claim of
    the subscriber (made first, answered with the outcome's, in one round trip);
    AnotherStart when it was claimed before."""
    assert sub.id is not None
    cancel = cancel_signal(ctx, sub.id)
    promise: DurablePromise[dict[str, Any]] = ctx.promise(RESULT_PROMISE)
    # a subscription of the task itself has its waiting receipt recorded by run already;
    # one added later records its own (sent, not awaited). Only one owed a still-running
    # notice asks whether the outcome is there
    notice = "timed_out" in sub.outcomes
    settled = False
    if notice:
        try:
            settled = await promise.peek() is not None
        except TerminalError:
            settled = True
    outcome_future = promise.value()
    try:
        await claim
    except TerminalError as exc:  # claimed before
        if is_cancellation(exc):
            raise
        raise AnotherStart from None
    waiting_since: float | None = None
    if not sub.from_task or (notice and not settled):
        waiting_since = await ctx.time()
        if not sub.from_task:
            record(ctx, rt, sub, DeliveryState.WAITING, at=waiting_since)
        if notice and not settled:
            await _notice_at_deadline(ctx, rt, sub, outcome_future, waiting_since, cancel)
    await unless_cancelled(cancel, outcome_future)
    try:
        result = TaskResult.model_validate(await outcome_future)
    except TerminalError as exc:
        if is_cancellation(exc):
            raise
        _trace.waited(waiting_since, settled, "failed")
        return await _deliver_failure(ctx, rt, sub, exc.message, cancel)
    _trace.waited(waiting_since, settled, "succeeded")
    view = TaskView(task_id=result.task_id, agent=result.agent, prompt=result.prompt,
                    labels=result.labels, output=result.output, completed_at=result.completed_at)
    if "succeeded" not in sub.outcomes:
        return _skip(ctx, rt, sub, result.completed_at)
    return await deliver(ctx, rt, sub, "result", view, cancel=cancel)


async def _notice_at_deadline(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription,
                              outcome_future: Any, now: float, cancel: Any) -> None:
    deadline_at = await ctx.get("deadline_at", type_hint=float)
    if not deadline_at:
        return
    timer = ctx.sleep(timedelta(seconds=max(0.0, float(deadline_at) - now)), name="deadline")
    done, _ = await wait_completed(cancel, outcome_future, timer)
    if cancel in done:
        raise Cancelled
    if outcome_future in done:
        return
    view = await task_view(ctx)
    await deliver(ctx, rt, sub, "still_running", view, cancel=cancel)


async def task_view(ctx: WorkflowSharedContext, error: str | None = None) -> TaskView:
    task_raw = await ctx.get("task", type_hint=dict)
    if task_raw:
        task = Task.model_validate(task_raw)
        return TaskView(task_id=task.task_id, agent=task.agent, prompt=task.prompt,
                        labels=task.labels, error=error)
    return TaskView(task_id=ctx.key(), agent="unknown", prompt="", error=error)


async def _deliver_failure(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription,
                           error: str, cancel: Any) -> dict[str, Any]:
    view = await task_view(ctx, rt.redact(error))
    if "failed" not in sub.outcomes:
        return _skip(ctx, rt, sub, await ctx.time())
    return await deliver(ctx, rt, sub, "failure", view, cancel=cancel)


def _skip(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription, at: float) -> dict[str, Any]:
    receipt = record(ctx, rt, sub, DeliveryState.SKIPPED, at=at)
    return receipt.model_dump(mode="json")


async def deliver(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription, kind: Any,
                  view: TaskView, prior: DeliveryReceipt | None = None,
                  cancel: Any = None) -> dict[str, Any]:
    """Try the subscription's channel, then each fallback; every attempt journaled. A redrive
    passes the ``prior`` (failed) receipt: its attempts come first in the new receipt.
    Cancelled when the ``cancel`` signal comes while it waits to retry."""
    assert sub.id is not None
    mid = message_id(view.task_id, sub.id, kind)
    attempts = prior.attempts if prior else 0
    last_error: str | None = None
    last_status: int | None = None
    at = 0.0
    # every attempt, kept in the receipt (a redrive's after those before it)
    history: list[AttemptRecord] = list(prior.history) if prior else []
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
        attempt = Attempt(rt, inst.sender, message, options, inst.attempt_timeout(target.options),
                           target.channel, mid, span, result_at)
        # an attempt that raised what a channel should not is retried in place, as well
        run_options = step_options(policy, AttemptOutcome)
        for n in range(1, policy.max_attempts + 1):
            attempts += 1
            try:
                outcome = await ctx.run_typed(f"deliver {target.channel} #{n}", attempt.run,
                                              run_options, n)
            except TerminalError as exc:  # the channel raised something unexpected, retries spent
                if is_cancellation(exc):
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
                receipt = record(ctx, rt, sub, state, at=at,
                                 kind=kind, attempts=attempts,
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
            record(ctx, rt, sub, DeliveryState.RETRYING, at=at,
                   kind=kind, attempts=attempts,
                   channel_used=target.channel, last_error=last_error,
                   provider_status=last_status, message_id=mid, next_attempt_at=at + delay,
                   history=history)
            timer = ctx.sleep(timedelta(seconds=delay), name=f"retry {target.channel} #{n}")
            if cancel is None:
                await timer
            else:
                await unless_cancelled(cancel, timer)
    receipt = record(ctx, rt, sub, DeliveryState.FAILED, at=at,
                     kind=kind, attempts=attempts,
                     last_error=last_error, provider_status=last_status, message_id=mid,
                     history=history)
    return receipt.model_dump(mode="json")
