"""Input of the handlers: JSON bodies and subscribers, checked once at the ingress.
"""

from __future__ import annotations

from pydantic import ValidationError
from restate import (
    TerminalError,
)

from gateway.channels import format_validation_error
from gateway.core import (
    Subscription,
    UserInputError,
)
from gateway.durable._untrusted import untrusted_problem
from gateway.durable.runtime import Runtime

# --- input -------------------------------------------------------------------------------


def describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return format_validation_error(exc)
    return str(exc)


def checked_subscription(rt: Runtime, task_id: str, raw: object, *,
                         untrusted: bool = False) -> Subscription:
    """Parse and validate a subscriber against this gateway's channels; TerminalError(400),
    or 403 for what an ``untrusted`` subscriber (not from the YAML file) may not use."""
    try:
        sub = Subscription.parse(raw)
        target = rt.channels.check(sub)
        fallback = [t.model_copy(update={"target": rt.channels.check(t)}) for t in sub.fallback]
    except (ValidationError, UserInputError, ValueError) as exc:
        raise TerminalError(f"invalid subscriber: {describe(exc)}", 400) from None
    sub = sub.model_copy(update={"target": target, "fallback": fallback})
    problem = untrusted_problem(rt, sub) if untrusted else None
    if problem is not None:
        raise TerminalError(f"subscriber refused: {problem}", 403)
    # its id derived from what it is, once normalised: the same subscriber is one subscription
    return sub.identified(task_id)
