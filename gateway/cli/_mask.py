"""How the command line shows a subscriber's target: masked unless ``--show-targets``.

Receipts carry targets as their channel shows them (no tokens or passwords); on a shared
screen or in a CI log even an address or a URL path says too much, so the CLI shows
``m***@example.com``, ``https://example.com/***`` and ``+15***01`` by default.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from gateway.core import MASK, mask_email, mask_phone

__all__ = ["mask_target", "shown_target"]

_PHONE = re.compile(r"^\+?[0-9 ().-]{7,}$")


def mask_target(target: str) -> str:
    """``target`` with what identifies a person or an endpoint hidden."""
    target = target.strip()
    if "://" in target:
        parts = urlsplit(target)
        try:
            port = f":{parts.port}" if parts.port else ""
            host = parts.hostname or ""
        except ValueError:
            return f"{parts.scheme}://{MASK}"
        if ":" in host:
            host = f"[{host}]"
        rest = f"/{MASK}" if parts.path.strip("/") or parts.query or parts.fragment else ""
        return f"{parts.scheme}://{host}{port}{rest}"
    local, at, _ = target.rpartition("@")
    if at and local:
        return target if local.endswith(MASK) else mask_email(target)
    if _PHONE.match(target):
        return mask_phone(target)
    return target  # a Slack channel name or a plugin's own target: nothing personal


def shown_target(target: str, show: bool) -> str:
    return target if show else mask_target(target)
