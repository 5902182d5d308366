"""API keys of the front door: made once, stored as hashes, checked in constant time.

A key is ``gwk_`` + 43 URL-safe characters (32 random bytes); the configuration holds only
``sha256:<hex>`` of it. A presented key is hashed and compared with every configured hash by
``hmac.compare_digest``, all of them each time, so neither the outcome's timing nor an early
exit says how close a guess came or which key matched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config import ApiKey, Scope

__all__ = ["KEY_PREFIX", "Caller", "KeyRing", "Unauthenticated", "hash_key", "new_key"]

KEY_PREFIX = "gwk_"


def new_key() -> str:
    """A new random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What the configuration stores for ``key``: ``sha256:<64 hex digits>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's name (never the key), what it may do, and the tenant it acts
    for (None: no tenant; see :mod:`gateway.api._tenancy`)."""

    name: str
    scopes: frozenset[Scope]
    tenant: str | None = None


class Unauthenticated(Exception):
    """No key, a malformed header or an unknown key; the message says which, not the key."""


class KeyRing:
    """The configured API keys."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._keys = [(k.hash.encode(), Caller(k.name, frozenset(k.scopes), k.tenant))
                      for k in keys]

    def __len__(self) -> int:
        return len(self._keys)

    def caller_of_hash(self, stored: str) -> Caller | None:
        """The caller whose configured hash is ``stored`` (a console session names its key
        by the hash: the key itself is never kept); None once the key is gone."""
        found: Caller | None = None
        for digest, caller in self._keys:
            if hmac.compare_digest(digest, stored.encode()) and found is None:
                found = caller
        return found

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller of an ``Authorization: Bearer <key>`` header."""
        if not self._keys:
            raise Unauthenticated("this gateway has no API keys configured (api.keys); create "
                                  "one with `gateway api-key NAME`")
        if not authorization:
            raise Unauthenticated("missing Authorization header; send Authorization: Bearer "
                                  "<API key>")
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthenticated("the Authorization header must be Bearer <API key>")
        presented = hash_key(key).encode()
        found: Caller | None = None
        for stored, caller in self._keys:
            if hmac.compare_digest(stored, presented) and found is None:
                found = caller
        if found is None:
            raise Unauthenticated("unknown API key")
        return found
