"""``subscribe`` and ``add_subscribers``: subscribers added to a task after its start.
"""

from __future__ import annotations

from datetime import timedelta

from restate import (
    TerminalError,
    WorkflowSharedContext,
)

from gateway.core import Subscription, TaskState
from gateway.durable._bodies import (
    AddedSubscribers,
    BodySerde,
    SubscriberBody,
    SubscribersBody,
    SubscriptionAdded,
)
from gateway.durable._input import checked_subscription
from gateway.durable._notify import later_headers, on_notify
from gateway.durable._receipts import Receipts, claim_receipts, waiting_receipt
from gateway.durable._services import (
    OWN_SUBSCRIBERS_STATE,
    workflow,
)
from gateway.durable.runtime import Runtime, current_runtime

# --- subscribe / status --------------------------------------------------------------------


@workflow.handler(input_serde=BodySerde(SubscriberBody))
async def subscribe(ctx: WorkflowSharedContext, body: SubscriberBody) -> SubscriptionAdded:
    """Validate a subscriber now (4xx on bad input) and start its ``on_notify``."""
    rt = current_runtime()
    sub = checked_subscription(
        rt, ctx.key(), body.value("subscribe", '"me@example.com" or "CHANNEL:TARGET"'),
        untrusted=True,
    )
    # in the task's trace, linked to this request's
    headers = await later_headers(ctx)
    ctx.workflow_send(on_notify, ctx.key(), SubscriberBody.of_subscription(sub),
                      idempotency_key=sub.id, headers=headers)
    return _added(rt, ctx.key(), sub)


def _added(rt: Runtime, task_id: str, sub: Subscription) -> SubscriptionAdded:
    assert sub.id is not None
    inst = rt.channels.get(sub.channel)
    return SubscriptionAdded(task_id=task_id, subscription_id=sub.id, channel=sub.channel,
                             target=inst.channel.redact_target(sub.target))




#: how long ``add_subscribers`` waits for a task that was sent but has not taken its own
#: subscribers yet (the moment between a submit and its run's first steps)
_ACCEPT_POLLS, _ACCEPT_POLL = 100, timedelta(milliseconds=100)


@workflow.handler(input_serde=BodySerde(SubscribersBody), enable_lazy_state=True)
async def add_subscribers(ctx: WorkflowSharedContext, body: SubscribersBody) -> AddedSubscribers:
    """A repeat submit's subscribers (a JSON list): those the task does not have yet are
    subscribed as ``subscribe`` does; ``added`` and ``existing`` say which were which."""
    rt = current_runtime()
    raw = body.value("add_subscribers", "a JSON list of subscribers")
    if not isinstance(raw, list):
        raise TerminalError("add_subscribers: send a JSON list of subscribers", 400)
    subs = list({s.id: s for s in (checked_subscription(rt, ctx.key(), r) for r in raw)}.values())
    own = await _own_subscription_ids(ctx)
    now = await ctx.time()
    others = [waiting_receipt(rt, s, now) for s in subs if s.id not in own]
    headers = await later_headers(ctx)
    claimed = set(await ctx.object_call(claim_receipts, key=ctx.key(), arg=Receipts(others),
                                        headers=headers) if others else [])
    added, existing = [], []
    for sub in subs:
        out = _added(rt, ctx.key(), sub)
        if sub.id in claimed:
            ctx.workflow_send(on_notify, ctx.key(), SubscriberBody.of_subscription(sub),
                              idempotency_key=sub.id, headers=headers)
            added.append(out)
        else:
            existing.append(out)
    return AddedSubscribers(task_id=ctx.key(), added=added, existing=existing)


async def _own_subscription_ids(ctx: WorkflowSharedContext) -> set[str]:
    """The ids of the subscribers the task took with it (waiting, bounded, until its run has
    journaled them: a repeat can come right after the first submit)."""
    for _ in range(_ACCEPT_POLLS):
        own = await ctx.get(OWN_SUBSCRIBERS_STATE, type_hint=list[str])
        if own is not None:
            return set(own)
        if await ctx.get("state", type_hint=str) == TaskState.FAILED.value:
            return set()  # an invalid task: it took none
        await ctx.sleep(_ACCEPT_POLL, name="task accepted?")
    raise TerminalError("the task has not started yet: try the repeat again in a moment", 503)
