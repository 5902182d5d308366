"""Addresses in the log lines of libraries (Apprise's "Sent Email to me@example.com"): masked.

The gateway's own lines name subscribers by subscription id and show targets as their
channel redacts them; a library writes what it was given. Its lines keep the domain or host
(enough to tell a provider outage from a typo) and hide who: ``m***@example.com``,
``https://hooks.example.com/***``, ``+15***67``.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

__all__ = ["MASKED_LOGGERS", "mask_addresses", "mask_library_lines"]

#: the loggers whose lines are masked (their own and their children's)
MASKED_LOGGERS = ("apprise",)

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/\s?#@]*@)?([^/\s?#'\"<>]*)"
                  r"([^\s'\"<>]*)")
_EMAIL = re.compile(r"(?<![\w.+-])([\w+-])[\w.+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_PHONE = re.compile(r"(?<![\w+])(\+\d{2})[\d .()-]{4,}(\d{2})(?![\w])")


def _url(match: re.Match[str]) -> str:
    rest = "/***" if match.group(3).strip("/") else ""
    return f"{match.group(1)}{match.group(2)}{rest}"


def mask_addresses(text: str) -> str:
    """``text`` with e-mail addresses, URL paths and credentials, and phone numbers hidden."""
    text = _URL.sub(_url, text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: f"{m.group(1)}***{m.group(2)}", text)


def mask_library_lines(logger: Any, method: str, event: MutableMapping[str, Any]
                       ) -> MutableMapping[str, Any]:
    """A structlog processor: the message of a line from one of :data:`MASKED_LOGGERS`,
    masked."""
    name = str(event.get("logger") or "")
    if any(name == n or name.startswith(n + ".") for n in MASKED_LOGGERS):
        for key in ("event", "message"):  # the record's formatted message may come along
            value = event.get(key)
            if isinstance(value, str):
                event[key] = mask_addresses(value)
    return event
