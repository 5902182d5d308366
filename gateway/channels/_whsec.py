"""Standard Webhooks secrets: ``whsec_`` + base64 of at least 16 random bytes, one check for
the webhook channel (signing) and the inbound hooks (verifying)."""

from __future__ import annotations

import base64
import binascii

__all__ = ["MIN_SECRET_BYTES", "SECRET_PREFIX", "whsec_key"]

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 16
_HOW = f"e.g. {SECRET_PREFIX} + `openssl rand -base64 32`"


def whsec_key(secret: str, *, prefix_required: bool = True) -> bytes:
    """The key bytes of ``secret``, or ``ValueError`` saying what to change (never the secret).
    Without ``prefix_required`` bare base64 is accepted, as the reference library does."""
    if prefix_required and not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret must start with {SECRET_PREFIX!r} followed by "
                         f"base64 ({_HOW})")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the part after {SECRET_PREFIX!r} is not valid base64 ({_HOW})"
                         ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"decodes to {len(key)} bytes; use at least {MIN_SECRET_BYTES} "
                         "random bytes")
    return key
