"""The delivery console: server-rendered pages at ``/console`` of the API (recent tasks, a
task's timeline with live updates, cancel and subscribe), signed in with an API key."""

from gateway.console._app import CONSOLE_PATH, console_app, console_mount
from gateway.console._session import Sessions

__all__ = ["CONSOLE_PATH", "Sessions", "console_app", "console_mount"]
