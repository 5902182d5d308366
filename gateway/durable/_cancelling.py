"""How a delivery sees its subscription cancelled: the durable promise ``cancel:<id>``.

``cancel`` (see :mod:`._cancel`) resolves it; a delivery waits on it together with what it
waits for anyway (the task's outcome, a retry's timer), so watching it costs no round trip.
"""

from __future__ import annotations

from typing import Any

from restate import WorkflowSharedContext
from restate.asyncio import wait_completed

__all__ = ["CANCEL_PROMISE", "Cancelled", "cancel_signal", "unless_cancelled"]

#: + subscription id: resolved once the subscription is cancelled
CANCEL_PROMISE = "cancel:"


class Cancelled(Exception):
    """The subscription was cancelled: nothing more is sent."""


def cancel_signal(ctx: WorkflowSharedContext, subscription_id: str) -> Any:
    """The future of the subscription's cancel promise. Made before the outcome's: when both
    are there, the server answers in that order, so a cancel made first is seen first."""
    return ctx.promise(CANCEL_PROMISE + subscription_id).value()


async def unless_cancelled(cancel: Any, *futures: Any) -> None:
    """Wait for one of ``futures``; Cancelled when the cancel came first (or with it)."""
    done, _ = await wait_completed(cancel, *futures)
    if cancel in done:
        raise Cancelled
