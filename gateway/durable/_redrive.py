"""Redrive: a failed subscription's new attempt chain, sending the same message again.

``TaskDeliveries.redrive`` (exclusive per task: two redrives at once cannot both start one)
checks that the subscription's receipt says failed, marks it retrying and sends
``redeliver``, a shared workflow handler that delivers the task's outcome with the same
message id (a receiver deduping by ``webhook-id`` sees one message). Its attempts follow the
failed ones in the receipt. What it sends is the subscription as ``on_notify`` had it,
recorded when it failed: the caller names only its id. ``redeliver`` is private to the
ingress.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from restate import ObjectContext, TerminalError, WorkflowSharedContext

from gateway.channels import TaskView
from gateway.core import DeliveryReceipt, DeliveryState, Subscription, TaskResult
from gateway.durable._delivery import deliver, is_cancellation, task_view
from gateway.durable._receipts import (
    failed_subscription,
    record,
    store_receipt,
    stored_receipt,
)
from gateway.durable._services import RESULT_PROMISE, deliveries, workflow
from gateway.durable.runtime import current_runtime
from gateway.observability import bind_delivery

__all__ = ["RedriveOrder", "RedriveRequest", "redeliver", "redrive"]


class RedriveRequest(BaseModel):
    """Which failed subscription of the task to deliver again."""

    subscription_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")


class RedriveOrder(BaseModel):
    """What ``redeliver`` sends: the subscription, after its failed receipt."""

    subscription: Subscription
    prior: DeliveryReceipt


@deliveries.handler(name="redrive")
async def redrive(ctx: ObjectContext, request: RedriveRequest) -> DeliveryReceipt:
    """Start a new attempt chain of a failed subscription; its receipt, now retrying.
    TerminalError 404: no receipt of it here; 409: it is not failed."""
    sid = request.subscription_id
    old = await stored_receipt(ctx, sid)
    if old is None:
        raise TerminalError(f"subscription {sid} has no failed delivery to redrive", 404)
    if old.state is not DeliveryState.FAILED:
        raise TerminalError(f"subscription {sid} is {old.state.value}: only a failed delivery "
                            "can be redriven", 409)
    sub = await failed_subscription(ctx, sid)
    if sub is None:
        raise TerminalError(f"subscription {sid} failed before this gateway version kept what "
                            "a redrive needs: subscribe it again instead", 409)
    now = await ctx.time()
    handle = ctx.workflow_send(redeliver, ctx.key(), RedriveOrder(subscription=sub, prior=old))
    new = old.model_copy(update={"state": DeliveryState.RETRYING, "updated_at": now,
                                 "next_attempt_at": now,
                                 "invocation_id": await handle.invocation_id()})
    store_receipt(ctx, new)
    return new


@workflow.handler(name="redeliver", ingress_private=True, enable_lazy_state=True)
async def redeliver(ctx: WorkflowSharedContext, order: RedriveOrder) -> DeliveryReceipt:
    """Deliver the task's outcome to a failed subscription again (from ``redrive`` only)."""
    rt = current_runtime()
    sub = order.subscription
    assert sub.id is not None
    bind_delivery(sub.id, sub.channel)
    try:
        try:
            result = TaskResult.model_validate(await ctx.promise(RESULT_PROMISE).value())
        except TerminalError as exc:
            if is_cancellation(exc):
                raise
            view = await task_view(ctx, rt.redact(exc.message))
            receipt = await deliver(ctx, rt, sub, "failure", view, prior=order.prior)
        else:
            view = TaskView(task_id=result.task_id, agent=result.agent, prompt=result.prompt,
                            labels=result.labels, output=result.output,
                            completed_at=result.completed_at)
            receipt = await deliver(ctx, rt, sub, "result", view, prior=order.prior)
    except TerminalError as exc:
        if not is_cancellation(exc):
            raise
        return record(ctx, rt, sub, DeliveryState.CANCELLED, at=await ctx.time())
    return DeliveryReceipt.model_validate(receipt)
