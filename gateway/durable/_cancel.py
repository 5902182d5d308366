"""``cancel``: cancel one subscription, in one durable step, and answer what it came to.

It resolves the subscription's cancel promise (see :mod:`._cancelling`), then looks at the
task's outcome:

* not known yet: no delivery has begun (deliveries wait for the outcome, and see a cancel
  made before it first), so the subscription is cancelled: its receipt says so at once; a
  task's own subscriber whose ``on_notify`` is not started yet has its idempotency key held
  here, so the task's start of it later finds this one and sends nothing;
* known: its delivery decides - it sees the cancel before its first attempt or while it
  waits to retry, and records "cancelled"; or it was sending, and records "delivered" (or
  "failed"). ``cancel`` attaches to that delivery (the invocation that claimed the
  subscriber, see CLAIM_PROMISE) and answers its receipt, so "cancelled" always means
  nothing is sent afterwards.

A subscription the task has no receipt of is refused (404) before anything is resolved.
"""

from __future__ import annotations

from restate import TerminalError, WorkflowSharedContext

from gateway.core import DeliveryReceipt, DeliveryState
from gateway.durable._bodies import Notified, SubscriberBody
from gateway.durable._cancelling import CANCEL_PROMISE
from gateway.durable._notify import on_notify
from gateway.durable._receipts import receipt_of, record_receipt
from gateway.durable._services import CLAIM_PROMISE, RESULT_PROMISE, workflow

__all__ = ["cancel"]


@workflow.handler(name="cancel", enable_lazy_state=True)
async def cancel(ctx: WorkflowSharedContext, seen: DeliveryReceipt) -> DeliveryReceipt:
    """Cancel the subscription of ``seen`` (its receipt as the caller saw it, not final);
    the receipt it came to: cancelled, or final already."""
    sid = seen.subscription_id
    stored = (await ctx.object_call(receipt_of, key=ctx.key(), arg=sid)).root
    if not stored:
        raise TerminalError(f"task {ctx.key()} has no subscription {sid}", 404)
    try:
        await ctx.promise(CANCEL_PROMISE + sid, type_hint=bool).resolve(True)
    except TerminalError:
        pass  # cancelled before: the receipt below says what it came to
    try:
        known = await ctx.promise(RESULT_PROMISE, type_hint=dict).peek() is not None
    except TerminalError:  # the task failed: known
        known = True
    if not known:
        cancelled = stored[0].model_copy(update={"state": DeliveryState.CANCELLED,
                                                 "updated_at": await ctx.time()})
        await ctx.object_call(record_receipt, key=ctx.key(), arg=cancelled)
        # holds the subscriber's claim (and a task's own one's idempotency key): a later
        # cancel attaches to it for this receipt
        ctx.workflow_send(on_notify, ctx.key(), SubscriberBody.of(
            {"cancelled": cancelled.model_dump(mode="json")}),
                          idempotency_key=sid)
        return cancelled
    delivering = await ctx.promise(CLAIM_PROMISE + sid, type_hint=str).value()
    answer = (await ctx.attach_invocation(delivering, type_hint=Notified)).root
    if isinstance(answer, DeliveryReceipt):
        return answer
    raise TerminalError(f"subscription {sid} of task {ctx.key()} was not delivered by the "
                        "invocation that claimed it", 500)  # not what on_notify does
