"""The Restate services of the gateway (the workflow ``AsyncNotificationsAgent`` and the
receipts object ``TaskDeliveries``, the one store of every receipt), their retry policy for
a failed handler attempt, and the names of the durable promises and state they share.
Handlers are defined in the modules that import these.
"""

from __future__ import annotations

from datetime import timedelta

import restate
from restate import (
    InvocationRetryPolicy,
    VirtualObject,
    Workflow,
)

log = restate.getLogger("gateway.workflow")  # type: ignore[no-untyped-call]  # SDK: untyped

RESULT_PROMISE = "result"
#: + subscription id: resolved by the first start of a subscriber (the task's own start of
#: it, the seed's ``on_notify`` through the ingress, ``subscribe``, a repeat submit) with its
#: invocation id: that one delivers, and its answer is the subscription's final receipt (what
#: a cancel attaches to); any other start of the same subscriber answers at once
CLAIM_PROMISE = "claim:"
#: the task's state: the ids of the subscribers it took with it (run's, not added later)
OWN_SUBSCRIBERS_STATE = "own_subscribers"
RETENTION = timedelta(days=30)

#: How Restate retries a handler attempt that failed (the gateway process died, a deploy):
#: quickly at first, then every 5 s for about 14 hours before pausing the invocation for an
#: operator to resume - never dropping it. Delivery retries have their own per-channel policy.
INVOCATION_RETRY = InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=100), exponentiation_factor=2.0,
    max_interval=timedelta(seconds=5), max_attempts=10_000, on_max_attempts="pause",
)

workflow = Workflow("AsyncNotificationsAgent", invocation_retry_policy=INVOCATION_RETRY)
deliveries = VirtualObject("TaskDeliveries", invocation_retry_policy=INVOCATION_RETRY)
