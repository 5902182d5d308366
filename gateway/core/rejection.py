"""The receipt of a subscriber that was refused (pure: no I/O).

A subscriber sent straight to the Restate ingress (``/send`` to ``on_notify``) gets its 202
before it is checked; when the check fails, a ``rejected`` receipt is what the task's status
shows instead of silence. It never holds the raw target or a secret: the target is masked to
its first characters and the reason is redacted, bounded and has the raw target masked too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from gateway.core.models import DeliveryReceipt, DeliveryState
from gateway.core.names import CHANNEL_NAME

__all__ = ["mask_target", "rejected_receipt"]

_SHOWN = 3
_REASON_MAX = 300


def mask_target(text: str) -> str:
    """The first few characters of a raw target and a mask: ``"not***"``."""
    text = text.strip()
    if len(text) <= _SHOWN + 1:
        return "***"
    return text[:_SHOWN] + "***"


def _channel_and_target(raw: object) -> tuple[str, str]:
    if isinstance(raw, dict):
        channel, target = raw.get("channel"), raw.get("target")
    elif isinstance(raw, str):
        channel, sep, target = raw.partition(":")
        if not sep or not CHANNEL_NAME.match(channel):
            channel, target = None, raw
    else:
        channel, target = None, json.dumps(raw, default=str)
    name = channel if isinstance(channel, str) and CHANNEL_NAME.match(channel) else "unknown"
    return name, target if isinstance(target, str) else json.dumps(target, default=str)


def rejected_receipt(task_id: str, raw: object, reason: str, at: float,
                     redact: Callable[[str], str], invocation_id: str | None = None
                     ) -> dict[str, Any]:
    """The ``rejected`` receipt of subscriber ``raw`` (as sent) refused for ``reason``. Its id
    is derived from what was sent, so the same bad subscriber twice is one receipt."""
    channel, target = _channel_and_target(raw)
    masked = mask_target(target)
    said = reason
    for text in sorted({target, target.strip(), json.dumps(raw, default=str)}, key=len,
                       reverse=True):
        if len(text) > 3:
            said = said.replace(text, masked)
    said = redact(said)
    if len(said) > _REASON_MAX:
        said = said[:_REASON_MAX - 3] + "..."
    what = json.dumps([task_id, raw], sort_keys=True, default=str)
    sid = "r_" + hashlib.sha256(what.encode()).hexdigest()[:16]
    return DeliveryReceipt(
        subscription_id=sid, channel=channel, target=masked, state=DeliveryState.REJECTED,
        last_error=said, created_at=at, updated_at=at, invocation_id=invocation_id,
    ).model_dump(mode="json", exclude_none=True)
