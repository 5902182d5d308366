"""The Restate server's request identity keys a gateway endpoint verifies calls with.

Given (``--identity-keys`` or ``GATEWAY_IDENTITY_KEYS``), they must be usable: a blank value
or an empty item is refused, never read as "no keys", which would silently turn the
verification off. Not given at all: the endpoint is not verified (local use, or guarded by
the network)."""

from __future__ import annotations

import re

from gateway.errors import UserInputError

__all__ = ["parse_identity_keys"]

PREFIX = "publickeyv1_"
_KEY = re.compile(PREFIX + r"[A-Za-z0-9]+")
_WHERE = "--identity-keys (GATEWAY_IDENTITY_KEYS)"


def parse_identity_keys(value: str | None) -> list[str]:
    """The keys of a comma-separated ``value``; [] when not given; UserInputError otherwise."""
    if value is None:
        return []
    keys = [k.strip() for k in value.split(",")]
    if not any(keys):
        raise UserInputError(f"{_WHERE} is blank: give the Restate server's {PREFIX}... "
                             "keys, or unset it to serve without request verification")
    for i, key in enumerate(keys, 1):
        if not key:
            raise UserInputError(f"{_WHERE}: item {i} of {len(keys)} is empty; remove the "
                                 "extra comma")
        if not _KEY.fullmatch(key):
            raise UserInputError(f"{_WHERE}: item {i} is not a {PREFIX}... key (the Restate "
                                 "server's public request identity key)")
    return keys
