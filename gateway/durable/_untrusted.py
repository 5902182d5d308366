"""Subscribers of the workflow's handlers that do not come from the YAML file.

Every body that reaches ``run``, ``subscribe`` or ``on_notify`` may come straight from the
Restate ingress, so its subscribers are held to :func:`gateway.channels.check_untrusted`. The
one exception is a standing subscription of the YAML file that ``run`` routed and started: its
fingerprint is kept in the task's state (``standing``), and ``on_notify`` accepts a subscriber
the check refuses only when it is one of those, exactly as routed.
"""

from __future__ import annotations

import hashlib
import json

from gateway.channels import check_untrusted
from gateway.core import Subscription, SubscriptionError
from gateway.durable.runtime import Runtime

__all__ = ["STANDING_STATE", "standing_fingerprint", "untrusted_problem"]

#: workflow state: fingerprints of the standing subscriptions ``run`` routed
STANDING_STATE = "standing"


def untrusted_problem(rt: Runtime, sub: Subscription) -> str | None:
    """Why ``sub`` (and its fallbacks) may not come from an untrusted caller, or None."""
    try:
        for target in (sub, *sub.fallback):
            check_untrusted(rt.channels, target, rt.open_channels)
    except SubscriptionError as exc:
        return rt.redact(str(exc))
    return None


def standing_fingerprint(sub: Subscription) -> str:
    """What identifies where and how a subscription delivers (not its id or source)."""
    doc = sub.model_dump(mode="json", include={"channel", "target", "options", "fallback",
                                               "outcomes", "template"})
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
