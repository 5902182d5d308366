"""``on_notify``: tell one subscriber the task's outcome (the handler of Restate's
"notify when ready" pattern).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from restate import (
    TerminalError,
    WorkflowSharedContext,
)

from gateway.core import (
    DeliveryReceipt,
    DeliveryState,
    Subscription,
)
from gateway.core.rejection import rejected_receipt
from gateway.durable._bodies import BodySerde, Notified, NotifyAck, SubscriberBody, Unreadable
from gateway.durable._cancelling import Cancelled
from gateway.durable._delivery import AnotherStart, await_and_deliver, is_cancellation
from gateway.durable._input import checked_subscription, describe
from gateway.durable._receipts import record, record_receipt
from gateway.durable._services import (
    CLAIM_PROMISE,
    workflow,
)
from gateway.durable._untrusted import STANDING_STATE, standing_fingerprint, untrusted_problem
from gateway.durable.runtime import Runtime, current_runtime
from gateway.observability import bind_delivery
from gateway.observability import trace as _trace


@workflow.handler(input_serde=BodySerde(SubscriberBody), enable_lazy_state=True,
                  idempotency_retention=timedelta(days=7),
                  # a subscriber waiting for the result is suspended after 1 s without
                  # activity instead of Restate's default minute: waiting then holds no
                  # stream, coroutine or memory in the gateway process
                  inactivity_timeout=timedelta(seconds=1))
async def on_notify(ctx: WorkflowSharedContext, body: SubscriberBody) -> Notified:
    """Tell one subscriber the task's outcome: ``"me@example.com"``, ``"CHANNEL:TARGET"`` or
    ``{"channel": ..., "target": ..., "options": {...}, "fallback": [...]}``."""
    rt = current_runtime()
    try:
        raw = body.value("on_notify", '"me@example.com" or "CHANNEL:TARGET" or an object')
    except TerminalError as exc:
        await _reject(ctx, rt, body.root.text if isinstance(body.root, Unreadable) else "",
                      exc.message)
        raise
    from_ingress = _INGRESS_PATH in ctx.request().headers
    if isinstance(raw, dict) and list(raw) == ["cancelled"] and not from_ingress:
        return await _hold_cancelled(ctx, raw["cancelled"])
    try:
        # sent by the gateway's own handlers, it was checked and identified where it came in
        # (run, subscribe, add_subscribers): only what reaches the ingress is parsed and
        # checked against the channels again
        sub = (checked_subscription(rt, ctx.key(), raw) if from_ingress
               else _checked_before(ctx.key(), raw))
        if from_ingress or not sub.from_task:  # run sends only what it checked or routed
            await _refuse_untrusted(ctx, rt, sub)
    except TerminalError as exc:
        await _reject(ctx, rt, raw, exc.message)
        raise
    assert sub.id is not None
    # the same subscriber is told once however often it is started: every start claims it
    # (CLAIM_PROMISE) and the one that claims it first delivers, in its own invocation. The
    # task's own starts also share its id as their idempotency key: one invocation for them
    claim = ctx.promise(CLAIM_PROMISE + sub.id, type_hint=str).resolve(ctx.request().id)
    # one sent straight to the ingress (the seed's way): in the task's trace, linked
    trace_headers = await later_headers(ctx) if from_ingress else None
    bind_delivery(sub.id, sub.channel)
    span = _trace.start_notify(ctx, sub.id, sub.channel, trace_headers)
    try:
        receipt = await await_and_deliver(ctx, rt, sub, claim)
    except AnotherStart:
        _trace.finish_notify(span, {"state": "duplicate"})
        return Notified(NotifyAck(task_id=ctx.key(), subscription_id=sub.id,
                                  state=DeliveryState.WAITING))
    except Cancelled:  # the subscription's cancel (see gateway.durable._cancel)
        receipt = await _cancelled(ctx, rt, sub)
    except TerminalError as exc:
        if not is_cancellation(exc):
            raise
        # its invocation cancelled by an operator: nothing more is sent
        receipt = await _cancelled(ctx, rt, sub)
    _trace.finish_notify(span, receipt)
    return Notified(DeliveryReceipt.model_validate(receipt))


def _checked_before(task_id: str, raw: object) -> Subscription:
    """A subscription one of the gateway's handlers checked and sent (typed, identified)."""
    try:
        sub = Subscription.model_validate(raw)
    except ValidationError as exc:  # not what the gateway sends: another service of Restate
        raise TerminalError(f"invalid subscriber: {describe(exc)}", 400) from None
    return sub if sub.id is not None else sub.identified(task_id)


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
    ctx.object_send(record_receipt, key=ctx.key(), arg=DeliveryReceipt.model_validate(rejected))


#: set by the Restate server on an invocation that came through its ingress
_INGRESS_PATH = "x-restate-ingress-path"


async def _hold_cancelled(ctx: WorkflowSharedContext, raw: object) -> Notified:
    """Sent by ``cancel`` before the task's outcome is known (see gateway.durable._cancel):
    claim the subscriber, so no start of it delivers and a later cancel attaches here; this
    invocation holds its idempotency key too, so the task's own start of it finds this one
    and sends nothing. Its answer: the cancelled receipt (or, claimed before, an ack: that
    start sees the cancel and records it)."""
    receipt = DeliveryReceipt.model_validate(raw)
    try:
        await ctx.promise(CLAIM_PROMISE + receipt.subscription_id, type_hint=str).resolve(
            ctx.request().id)
    except TerminalError:
        return Notified(NotifyAck(task_id=ctx.key(), subscription_id=receipt.subscription_id,
                                  state=DeliveryState.CANCELLED))
    return Notified(receipt)


async def _cancelled(ctx: WorkflowSharedContext, rt: Runtime,
                     sub: Subscription) -> dict[str, Any]:
    """Record the subscription cancelled: nothing more is sent."""
    return record(ctx, rt, sub, DeliveryState.CANCELLED, at=await ctx.time()).model_dump(
        mode="json")


async def later_headers(ctx: WorkflowSharedContext) -> dict[str, str]:
    """The trace headers of a send of ``on_notify`` for a subscriber added after the start."""
    task_trace = await ctx.get("trace", type_hint=str)
    return _trace.subscribe_headers(ctx.key(), task_trace,
                                    ctx.request().headers.get(_trace.TRACEPARENT))
