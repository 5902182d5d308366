"""``cancel``: cancel one subscription, in one durable step, and answer what it came to.

It resolves the subscription's cancel promise (see :mod:`._cancelling`), then looks at the
task's outcome:

* not known yet: no delivery has begun (deliveries wait for the outcome, and see a cancel
  made before it first), so the subscription is cancelled; a task's own subscriber whose
  ``on_notify`` is not started yet has its idempotency key held here, so the task's start of
  it later finds this one and sends nothing;
* known: its delivery decides - it sees the cancel before its first attempt or while it
  waits to retry, and keeps "cancelled"; or it was sending, and keeps "delivered" (or
  "failed"). ``cancel`` answers the receipt kept, so "cancelled" always means nothing is
  sent afterwards.
"""

from __future__ import annotations

from restate import TerminalError, WorkflowSharedContext

from gateway.core import DeliveryReceipt, DeliveryState
from gateway.durable._bodies import SubscriberBody
from gateway.durable._cancelling import CANCEL_PROMISE
from gateway.durable._notify import on_notify, settle_once
from gateway.durable._services import FINAL_RECEIPT_PROMISE, RESULT_PROMISE, workflow

__all__ = ["cancel"]


@workflow.handler(name="cancel", enable_lazy_state=True)
async def cancel(ctx: WorkflowSharedContext, seen: DeliveryReceipt) -> DeliveryReceipt:
    """Cancel the subscription of ``seen`` (its receipt as the caller saw it, not final);
    the receipt it came to: cancelled, or final already."""
    sid = seen.subscription_id
    try:
        await ctx.promise(CANCEL_PROMISE + sid, type_hint=bool).resolve(True)
    except TerminalError:
        pass  # cancelled before: the receipt below says what it came to
    try:
        known = await ctx.promise(RESULT_PROMISE, type_hint=dict).peek() is not None
    except TerminalError:  # the task failed: known
        known = True
    if not known:
        marker = SubscriberBody.of({"cancelled": sid})
        ctx.workflow_send(on_notify, ctx.key(), marker, idempotency_key=sid)
        cancelled = seen.model_copy(update={"state": DeliveryState.CANCELLED,
                                            "updated_at": await ctx.time()})
        kept = await settle_once(ctx, cancelled.model_dump(mode="json"))
        return DeliveryReceipt.model_validate(kept)
    final = await ctx.promise(FINAL_RECEIPT_PROMISE + sid, type_hint=dict).value()
    return DeliveryReceipt.model_validate(final)
