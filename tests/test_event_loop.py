"""The event loop the gateway serves on: uvloop where installed, asyncio's own on request;
a typo is one line naming the variable and the choices, and ``gateway serve`` stops on it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from gateway.core import UserInputError
from gateway.local import run_serving
from gateway.local.event_loop import EVENT_LOOP_ENV, event_loop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default_and_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    assert event_loop() == "uvloop"
    assert run_serving(_loop_module()).startswith("uvloop")
    monkeypatch.setenv(EVENT_LOOP_ENV, " AsyncIO ")
    assert event_loop() == "asyncio"
    assert run_serving(_loop_module()).startswith("asyncio")


def test_an_unknown_loop_is_one_line_saying_what_to_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "trio")
    main = _loop_module()
    with pytest.raises(UserInputError, match="GATEWAY_EVENT_LOOP='trio': use one of "
                                             "uvloop, asyncio"):
        run_serving(main)
    assert main.cr_frame is None  # closed, not left to warn that it was never awaited
    env = {**os.environ, EVENT_LOOP_ENV: "trio"}
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--only", "restate",
                           "--host", "127.0.0.1", "--restate-port", "0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr)
    said = (done.stdout + done.stderr).strip().splitlines()
    assert any("GATEWAY_EVENT_LOOP='trio': use one of uvloop, asyncio" in line
               for line in said), said
    assert "Traceback" not in done.stderr
