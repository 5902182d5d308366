"""The console's ASGI app, mounted by the API at ``/console``."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.api._door import FrontDoor
from gateway.api.restate_link import RestateFailed
from gateway.console._access import LoginNeeded, PageError
from gateway.console._actions import cancel, subscribe
from gateway.console._events import task_events
from gateway.console._pages import login, login_form, logout, task_page, tasks_page
from gateway.console._render import HERE, SECURITY_HEADERS, base_of, page
from gateway.console._session import Sessions

__all__ = ["CONSOLE_PATH", "console_app", "console_mount"]

CONSOLE_PATH = "/console"


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return page("error.html", request, status=exc.status, title=exc.title, heading=exc.title,
                message=exc.message, who=None)


async def _login_needed(request: Request, exc: Exception) -> Response:
    base = base_of(request)
    if request.method != "GET" or request.url.path.endswith("/events"):
        return page("error.html", request, status=401, title="Not signed in",
                    heading="Not signed in", message="sign in again (the session ended)",
                    who=None)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{base}/login?next={quote(here, safe='')}", status_code=303,
                            headers=SECURITY_HEADERS)


async def _restate_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RestateFailed)
    message = ("Restate is not reachable; try again shortly" if not exc.reachable
               else "Restate answered unexpectedly; it has been logged")
    return page("error.html", request, status=503 if not exc.reachable else 502,
                title="Restate", heading="Restate", message=message, who=None)


def console_app(door: FrontDoor, extra: Sequence[BaseRoute] = (), *,
                sessions: Sessions | None = None, redrive: bool = False) -> Starlette:
    """The console (``extra``: more routes, e.g. the redrive actions, with ``redrive``)."""
    routes: list[BaseRoute] = [
        Route("/", tasks_page, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/tasks/{task_id}", task_page, methods=["GET"]),
        Route("/tasks/{task_id}/events", task_events, methods=["GET"]),
        Route("/tasks/{task_id}/subscribe", subscribe, methods=["POST"]),
        Route("/tasks/{task_id}/subscriptions/{subscription_id}/cancel", cancel,
              methods=["POST"]),
        *extra,
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        PageError: _page_error, LoginNeeded: _login_needed, RestateFailed: _restate_failed})
    app.state.door = door
    app.state.sessions = sessions or Sessions.from_env()
    app.state.redrive_enabled = redrive
    return app


def console_mount(door: FrontDoor) -> Mount:
    """The console at ``/console`` of the API."""
    from gateway.console.redrive import REDRIVE_ROUTES

    return Mount(CONSOLE_PATH, app=console_app(door, REDRIVE_ROUTES, redrive=True))
