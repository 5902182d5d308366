"""HTML of the console: Jinja2 templates (autoescaped) from this package, and the headers
every page gets (no caching, no framing, only this origin's script and style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from gateway.console._timeline import clock, tone_of_task

__all__ = ["HERE", "SECURITY_HEADERS", "base_of", "page", "render"]

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   trim_blocks=True, lstrip_blocks=True)
_env.globals.update(clock=clock, tone=tone_of_task)


def base_of(request: Request) -> str:
    """Where the console is mounted (``/console``), for links."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(name: str, request: Request, **values: Any) -> str:
    return _env.get_template(name).render(base=base_of(request), **values)


def page(name: str, request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(render(name, request, **values), status_code=status,
                        headers=SECURITY_HEADERS)
