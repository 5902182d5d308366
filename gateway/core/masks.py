"""How a target is shown partly hidden (``j***@example.com``, ``+15***67``): one mask for
every channel and the command line. Secrets are not masked but replaced whole, by
:func:`gateway.core.redaction.redactor`."""

from __future__ import annotations

import re

__all__ = ["MASK", "mask_email", "mask_phone"]

#: what stands for the hidden part of a target
MASK = "***"
_SEPARATORS = re.compile(r"[^0-9+]")


def mask_email(address: str) -> str:
    """``jane@example.com`` as ``j***@example.com``; :data:`MASK` if it is no address."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local:
        return MASK
    return f"{local[0]}{MASK}@{domain}"


def mask_phone(number: str) -> str:
    """``+15551234567`` as ``+15***67`` (separators dropped); :data:`MASK` if too short."""
    digits = _SEPARATORS.sub("", number.strip())
    if len(digits) < 7:
        return MASK
    return f"{digits[:3]}{MASK}{digits[-2:]}"
