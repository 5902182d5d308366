"""Who is looking at the console: a session cookie (from ``/console/login``) or the API's
``Authorization: Bearer`` header; the scope a page or an action needs; its CSRF check."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from gateway.api._door import FrontDoor, door_of
from gateway.api.auth import Caller, Unauthenticated
from gateway.config import Scope
from gateway.console._session import COOKIE, Sessions

__all__ = ["LoginNeeded", "PageError", "Viewer", "sessions_of", "viewer"]


class PageError(Exception):
    """An answer other than the page: shown as an HTML page with this status and line."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class LoginNeeded(Exception):
    """No (valid) session and no Authorization header: go to the login page."""


@dataclass(frozen=True)
class Viewer:
    caller: Caller
    #: the session cookie it came with (None: an Authorization header, no CSRF token needed)
    cookie: str | None
    csrf: str | None

    def may(self, scope: Scope) -> bool:
        return scope in self.caller.scopes


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def _caller(request: Request, door: FrontDoor) -> tuple[Caller, str | None]:
    header = request.headers.get("authorization")
    if header:
        try:
            return door.settings.keys.authenticate(header), None
        except Unauthenticated as exc:
            raise PageError(401, "Not signed in", str(exc)) from None
    cookie = request.cookies.get(COOKIE)
    key_hash = sessions_of(request).key_hash(cookie)
    caller = door.settings.keys.caller_of_hash(key_hash) if key_hash else None
    if caller is None or cookie is None:
        raise LoginNeeded()
    return caller, cookie


def viewer(request: Request, scope: Scope) -> Viewer:
    """The viewer of a request that needs ``scope`` (403 page naming it when missing)."""
    door = door_of(request)
    caller, cookie = _caller(request, door)
    if scope not in caller.scopes:
        raise PageError(403, "Missing scope",
                        f"the API key {caller.name!r} lacks the scope {scope!r}, which this "
                        f"page needs; sign in with a key that has it")
    csrf = sessions_of(request).csrf_token(cookie) if cookie else None
    return Viewer(caller, cookie, csrf)


def check_csrf(request: Request, who: Viewer, token: str | None) -> None:
    """An action by a session must carry its CSRF token."""
    if who.cookie is not None and not sessions_of(request).csrf_ok(who.cookie, token):
        raise PageError(403, "Form expired",
                        "the form's CSRF token is missing or wrong; reload the page and try "
                        "again")
