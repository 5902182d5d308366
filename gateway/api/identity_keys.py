"""Restate request identity keys: ``publickeyv1_`` followed by the base58 of a 32-byte Ed25519
public key. The gateway checks the keys it is given once, at start, so a placeholder or a typo is
a one-line error naming ``GATEWAY_IDENTITY_KEYS`` instead of a traceback from the SDK.

Given (``--identity-keys`` or ``GATEWAY_IDENTITY_KEYS``), they must be usable: a blank value or
an empty item is refused, never read as "no keys", which would silently turn the verification
off. Not given at all: the endpoint is not verified (local use, or guarded by the network)."""

from __future__ import annotations

from gateway.core import UserInputError

__all__ = ["KEY_PREFIX", "encode_public_key", "parse_identity_keys"]

KEY_PREFIX = "publickeyv1_"
_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_KEY_BYTES = 32
# base58 of 32 bytes is at most 44 characters; anything longer is not a key (and is not decoded)
_MAX_ENCODED = 44


def _b58decode(text: str) -> bytes | None:
    number = 0
    for char in text:
        digit = _INDEX.get(char)
        if digit is None:
            return None
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, digit = divmod(number, 58)
        out.append(_ALPHABET[digit])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def _key_problem(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return f"does not start with {KEY_PREFIX}"
    encoded = key[len(KEY_PREFIX):]
    if len(encoded) > _MAX_ENCODED:
        return f"is too long for a {_KEY_BYTES}-byte key"
    raw = _b58decode(encoded)
    if raw is None:
        return "is not base58"
    if len(raw) != _KEY_BYTES:
        return f"decodes to {len(raw)} bytes, not {_KEY_BYTES}"
    return None


def parse_identity_keys(text: str | None, source: str = "GATEWAY_IDENTITY_KEYS") -> list[str]:
    """The comma-separated keys of ``text``; [] when not given (None). A blank value, an empty
    item or a key that is not a Restate public key raises UserInputError naming ``source``."""
    if text is None:
        return []
    keys = [k.strip() for k in text.split(",")]
    if not any(keys):
        raise UserInputError(f"{source} is blank: give the Restate server's {KEY_PREFIX}... "
                             "keys, or unset it to serve without request verification")
    for i, key in enumerate(keys, 1):
        if not key:
            raise UserInputError(f"{source}: item {i} of {len(keys)} is empty; remove the "
                                 "extra comma")
        problem = _key_problem(key)
        if problem is not None:
            shown = key if len(key) <= 60 else key[:57] + "..."
            raise UserInputError(
                f"{source}: item {i} {shown!r} {problem}: set the public key of the Restate "
                f"cluster's request signing key ({KEY_PREFIX} + base58 of {_KEY_BYTES} bytes, "
                "which restate-server logs as 'Loaded request identity key' at start)")
    return keys


def encode_public_key(raw: bytes) -> str:
    """The ``publickeyv1_...`` form of a raw 32-byte Ed25519 public key."""
    if len(raw) != _KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has {_KEY_BYTES} bytes, not {len(raw)}")
    return KEY_PREFIX + _b58encode(raw)

