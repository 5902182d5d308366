"""How the command line shows a subscriber's target: masked unless ``--show-targets``.

Receipts carry targets as their channel shows them (no tokens or passwords); on a shared
screen or in a CI log even an address or a URL path says too much, so the CLI shows
``m***@example.com``, ``https://example.com/***`` and ``+15***01`` by default.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

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
            return f"{parts.scheme}://***"
        if ":" in host:
            host = f"[{host}]"
        rest = "/***" if parts.path.strip("/") or parts.query or parts.fragment else ""
        return f"{parts.scheme}://{host}{port}{rest}"
    local, at, domain = target.rpartition("@")
    if at and local:
        return f"{local[0]}***@{domain}" if not local.endswith("***") else target
    if _PHONE.match(target):
        digits = re.sub(r"[^0-9+]", "", target)
        return f"{digits[:3]}***{digits[-2:]}" if len(digits) >= 7 else "***"
    return target  # a Slack channel name or a plugin's own target: nothing personal


def shown_target(target: str, show: bool) -> str:
    return target if show else mask_target(target)
