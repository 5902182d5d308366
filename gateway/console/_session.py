"""Console sessions: a signed cookie naming the API key by its configured hash, and the CSRF
token of each session.

The cookie is ``<base64 JSON {h: sha256 hash of the key, x: expiry}>.<HMAC-SHA256>`` signed
with ``GATEWAY_CONSOLE_SECRET`` when it is set (so sessions outlive a restart and hold on
every API replica that shares it), else with a random secret of this process (a restart
ends every session). The key itself is never in it, a changed cookie does not verify, and
the key leaving ``api.keys`` ends its sessions. It is HttpOnly, SameSite=Strict, and Secure
when the console is reached over HTTPS.

CSRF: every form carries ``csrf``, an HMAC of the session cookie under another derivation
of the secret; an action with a session cookie is refused without it. SameSite=Strict keeps
other sites' requests from carrying the cookie at all; the token also covers browsers that
ignore SameSite. Requests with ``Authorization: Bearer`` carry no ambient credential and
need no token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping

from gateway.core import UserInputError

__all__ = ["COOKIE", "SECRET_ENV", "SESSION_SECONDS", "Sessions"]

COOKIE = "gw_console"
SESSION_SECONDS = 12 * 3600
#: the secret sessions are signed with, shared by the API's replicas (else one per process)
SECRET_ENV = "GATEWAY_CONSOLE_SECRET"
_MIN_SECRET = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))


class Sessions:
    """Makes and checks session cookies and CSRF tokens with this process's secret."""

    def __init__(self, secret: bytes | None = None) -> None:
        root = secret or secrets.token_bytes(32)
        self._sign_key = hmac.new(root, b"session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(root, b"csrf", hashlib.sha256).digest()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Sessions:
        """Signed with ``GATEWAY_CONSOLE_SECRET`` when set (UserInputError when it is too
        short to be one), else with a random secret of this process."""
        value = (os.environ if environ is None else environ).get(SECRET_ENV, "")
        if not value:
            return cls()
        if len(value) < _MIN_SECRET:
            raise UserInputError(f"{SECRET_ENV}: give at least {_MIN_SECRET} random characters "
                                 f"(e.g. the output of `openssl rand -hex 32`), or unset it")
        return cls(value.encode())

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._sign_key, payload.encode(), hashlib.sha256).digest())

    def issue(self, key_hash: str, now: float | None = None) -> str:
        """A session cookie value for the key whose configured hash is ``key_hash``."""
        expires = int((now or time.time()) + SESSION_SECONDS)
        payload = _b64(json.dumps({"h": key_hash, "x": expires}).encode())
        return f"{payload}.{self._mac(payload)}"

    def key_hash(self, cookie: str | None, now: float | None = None) -> str | None:
        """The key hash of a valid, unexpired session cookie (None otherwise)."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 512:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(data, dict) or float(data.get("x", 0)) < (now or time.time()):
            return None
        value = data.get("h")
        return value if isinstance(value, str) else None

    def csrf_token(self, cookie: str) -> str:
        return _b64(hmac.new(self._csrf_key, cookie.encode(), hashlib.sha256).digest())[:32]

    def csrf_ok(self, cookie: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(cookie), str(token))
