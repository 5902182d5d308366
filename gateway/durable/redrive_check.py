"""Whether a subscription can be redriven, from the task's status: the clear reason why not.

Light on purpose (no Restate SDK): the ingress clients and the API ask it before they call
``TaskDeliveries.redrive``, which checks again, atomically (see :mod:`._redrive`).
"""

from __future__ import annotations

from gateway.core import DeliveryState, TaskStatus

__all__ = ["REDRIVE_HANDLER", "redrive_refusal"]

#: the receipts object's handler that starts a redrive
REDRIVE_HANDLER = "redrive"


def redrive_refusal(status: TaskStatus, subscription_id: str) -> tuple[int, str] | None:
    """(404, why) for an unknown subscription, (409, why) for one that is not failed, None
    when it can be redriven."""
    found = next((r for r in status.deliveries if r.subscription_id == subscription_id), None)
    if found is None:
        return 404, f"task {status.task_id!r} has no subscription {subscription_id!r}"
    if found.state is not DeliveryState.FAILED:
        return 409, (f"subscription {subscription_id} is {found.state.value}: only a failed "
                     "delivery can be redriven")
    return None
