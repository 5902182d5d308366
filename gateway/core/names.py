"""The one rule for a channel's name (the part of a subscription before the colon)."""

from __future__ import annotations

import re

__all__ = ["CHANNEL_NAME", "CHANNEL_NAME_PATTERN", "CHANNEL_NAME_RULE"]

#: a channel's name, as a pattern string (for pydantic ``Field(pattern=...)``)
CHANNEL_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
#: the same, compiled
CHANNEL_NAME = re.compile(CHANNEL_NAME_PATTERN)
#: the rule in words, for error messages
CHANNEL_NAME_RULE = (
    "lower-case letters, digits, '-' or '_', starting with a letter, at most 64 characters"
)
