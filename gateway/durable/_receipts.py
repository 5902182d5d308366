"""Receipts: the virtual object ``TaskDeliveries`` keyed by task id, the one store of every
receipt of a task's subscriptions (shared workflow handlers cannot write workflow state), and
how a handler records one: a one-way call, so a delivery waits for no round trip.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, RootModel
from restate import (
    ObjectContext,
    ObjectSharedContext,
    WorkflowSharedContext,
)

from gateway.core import (
    AttemptRecord,
    DeliveryReceipt,
    DeliveryState,
    Subscription,
)
from gateway.durable import _task_log
from gateway.durable._services import (
    deliveries,
)
from gateway.durable.runtime import Runtime
from gateway.observability import metrics as _metrics
from gateway.observability import trace as _trace


class Receipts(RootModel[list[DeliveryReceipt]]):
    """Receipts of a task's subscriptions."""


def waiting_receipt(rt: Runtime, sub: Subscription, at: float) -> DeliveryReceipt:
    assert sub.id is not None
    inst = rt.channels.get(sub.channel)
    return DeliveryReceipt(
        subscription_id=sub.id, channel=sub.channel,
        target=inst.channel.redact_target(sub.target), state=DeliveryState.WAITING,
        created_at=at, updated_at=at, address=inst.channel.reveal_target(sub.target),
    )


def record(ctx: WorkflowSharedContext, rt: Runtime, sub: Subscription, state: DeliveryState, *,
           at: float, kind: str = "result", attempts: int = 0,
           channel_used: str | None = None, last_error: str | None = None,
           provider_status: int | None = None, message_id: str | None = None,
           delivered_at: float | None = None, next_attempt_at: float | None = None,
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
    if state is DeliveryState.FAILED:  # with what a redrive needs (gateway.durable._redrive)
        failed = FailedDelivery(receipt=receipt, subscription=sub.model_copy(
            update={"from_task": False}))
        ctx.object_send(record_failure, key=ctx.key(), arg=failed)
    else:
        # no traceparent: restate-server starts a linked trace for a send whatever it
        # carries, the receipts make no spans, and headers are part of the journal an
        # on_notify waiting out a retry across an upgrade replays (see gateway._trace)
        ctx.object_send(record_receipt, key=ctx.key(), arg=receipt)
    return receipt


# --- receipts ------------------------------------------------------------------------------

#: + subscription id: its newest receipt
_RECEIPT = "r:"
#: + subscription id: when it was subscribed (its waiting receipt's time): what every later
#: receipt of it shows as ``created_at``
_CREATED = "c:"


# a blind write, no read: a task with a thousand subscribers records a thousand receipts one
# at a time, and a read would be one more round trip each (lazy state: none is sent either).
# Nothing older can overwrite a newer receipt: the receipts of one subscription come from
# the one invocation that claimed it, in the order it sent them (see CLAIM_PROMISE); a
# waiting one from ``run`` or a repeat only where there is none (``claim``); ``cancel``
# records "cancelled" only before the outcome, when no delivery has begun; a redrive only
# after "failed", the last receipt of the delivery it repeats.
# private, as every writer here: only the gateway's own handlers say what a receipt is
@deliveries.handler(name="record", ingress_private=True, enable_lazy_state=True)
async def record_receipt(ctx: ObjectContext, new: DeliveryReceipt) -> None:
    """Store the newest receipt of a subscription."""
    ctx.set(_RECEIPT + new.subscription_id, new.model_dump(mode="json"))
    if new.state is DeliveryState.WAITING:
        ctx.set(_CREATED + new.subscription_id, new.created_at)


def _created(raw: dict[str, Any], created: float | None) -> dict[str, Any]:
    """A stored receipt with the time its subscription was made."""
    return raw if created is None else {**raw, "created_at": created}


async def _stored(ctx: ObjectContext | ObjectSharedContext,
                  subscription_id: str) -> dict[str, Any] | None:
    raw = await ctx.get(_RECEIPT + subscription_id, type_hint=dict)
    if not raw:
        return None
    return _created(raw, await ctx.get(_CREATED + subscription_id, type_hint=float))


#: + subscription id: a failed subscription, as ``on_notify`` had it (its options may hold a
#: secret, like the invocation's journal): what a redrive sends again
_FAILED_SUBSCRIPTION = "f:"


class FailedDelivery(BaseModel):
    """A failed delivery's receipt and its subscription."""

    receipt: DeliveryReceipt
    subscription: Subscription


# private: only the gateway's own handlers say what a redrive may send
@deliveries.handler(name="record_failure", ingress_private=True, enable_lazy_state=True)
async def record_failure(ctx: ObjectContext, failed: FailedDelivery) -> None:
    """Store a failed delivery's receipt, and its subscription for a redrive."""
    await record_receipt(ctx, failed.receipt)
    ctx.set(_FAILED_SUBSCRIPTION + failed.receipt.subscription_id,
            failed.subscription.model_dump(mode="json", exclude_defaults=True))


async def failed_subscription(ctx: ObjectContext, subscription_id: str) -> Subscription | None:
    """The subscription of a failed delivery, as recorded by ``record_failure``."""
    raw = await ctx.get(_FAILED_SUBSCRIPTION + subscription_id, type_hint=dict)
    return Subscription.model_validate(raw) if raw else None


async def stored_receipt(ctx: ObjectContext, subscription_id: str) -> DeliveryReceipt | None:
    raw = await _stored(ctx, subscription_id)
    return DeliveryReceipt.model_validate(raw) if raw else None


def store_receipt(ctx: ObjectContext, receipt: DeliveryReceipt) -> None:
    ctx.set(_RECEIPT + receipt.subscription_id, receipt.model_dump(mode="json"))


@deliveries.handler(name="claim", ingress_private=True)
async def claim_receipts(ctx: ObjectContext, receipts: Receipts) -> list[str]:
    """Record the waiting receipts of subscriptions the task has no receipt of; their ids
    (one at a time per task: two repeats at once cannot both add the same subscriber)."""
    claimed = []
    for receipt in receipts.root:
        key = _RECEIPT + receipt.subscription_id
        if await ctx.get(key, type_hint=dict) is None:
            ctx.set(key, receipt.model_dump(mode="json", exclude_none=True))
            ctx.set(_CREATED + receipt.subscription_id, receipt.created_at)
            claimed.append(receipt.subscription_id)
    return claimed


@deliveries.handler(name="receipt", kind="shared")
async def receipt_of(ctx: ObjectSharedContext, subscription_id: str) -> Receipts:
    """The receipt of one subscription of the task: none, or one."""
    raw = await _stored(ctx, subscription_id)
    return Receipts.model_validate([raw] if raw else [])


@deliveries.handler(name="list", kind="shared")
async def list_receipts(ctx: ObjectSharedContext) -> Receipts:
    """Every receipt of the task, oldest subscription first."""
    out: list[dict[str, Any]] = []
    for key in await ctx.state_keys():
        if key.startswith(_RECEIPT):
            value = await _stored(ctx, key.removeprefix(_RECEIPT))
            if value:
                out.append(value)
    out.sort(key=lambda r: (r["created_at"], r["subscription_id"]))
    return Receipts.model_validate(out)
