"""The event loop the gateway serves on, chosen by ``GATEWAY_EVENT_LOOP``.

``uvloop`` (the default where it is installed: every platform but Windows) runs the same
asyncio code on libuv. Under a burst it cost the gateway's process about a tenth less CPU
per delivery than asyncio's own loop (medians of alternating rounds, README: Benchmarks):
granian hands each request and each HTTP/2 frame to the loop from its Rust threads, which
asyncio's loop pays for with a write to its wake-up pipe every time, and every socket write
of the webhook client is cheaper on libuv. ``asyncio`` is the way back if uvloop misbehaves.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from gateway.core import UserInputError

__all__ = ["EVENT_LOOPS", "EVENT_LOOP_ENV", "event_loop", "run_serving"]

EVENT_LOOP_ENV = "GATEWAY_EVENT_LOOP"
EVENT_LOOPS = ("uvloop", "asyncio")

T = TypeVar("T")


def _has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def event_loop() -> str:
    """The configured loop's name, or ``UserInputError`` saying what to set."""
    name = os.environ.get(EVENT_LOOP_ENV, "").strip().lower()
    if not name:
        return "uvloop" if _has_uvloop() else "asyncio"
    if name not in EVENT_LOOPS:
        raise UserInputError(f"{EVENT_LOOP_ENV}={name!r}: use one of {', '.join(EVENT_LOOPS)}")
    if name == "uvloop" and not _has_uvloop():
        raise UserInputError(f"{EVENT_LOOP_ENV}=uvloop: uvloop is not installed here (it has "
                             "no Windows build); install it or set asyncio")
    return name


def run_serving(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` (the gateway's serving coroutine) to its end on the configured loop."""
    try:
        name = event_loop()
    except UserInputError:
        main.close()  # never started: no "never awaited" warning after the one-line error
        raise
    if name == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
