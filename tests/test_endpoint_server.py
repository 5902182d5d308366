"""The Restate endpoint's ASGI server: granian unless GATEWAY_ENDPOINT_SERVER says hypercorn;
a typo is one line naming the variable and the choices, and ``gateway serve`` stops on it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.core import UserInputError
from gateway.local.endpoint import ENDPOINT_SERVER_ENV, endpoint_server


def test_granian_by_default_and_hypercorn_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_SERVER_ENV, raising=False)
    assert endpoint_server() == "granian"
    monkeypatch.setenv(ENDPOINT_SERVER_ENV, " Hypercorn ")
    assert endpoint_server() == "hypercorn"


def test_an_unknown_server_is_one_line_saying_what_to_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, ENDPOINT_SERVER_ENV: "uvicorn"}
    monkeypatch.setenv(ENDPOINT_SERVER_ENV, "uvicorn")
    with pytest.raises(UserInputError, match="GATEWAY_ENDPOINT_SERVER='uvicorn': use one of "
                                             "granian, hypercorn"):
        endpoint_server()
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--only", "restate",
                           "--host", "127.0.0.1", "--restate-port", "0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    said = (done.stdout + done.stderr).strip().splitlines()
    assert any("GATEWAY_ENDPOINT_SERVER='uvicorn': use one of granian, hypercorn" in line
               for line in said), said
    assert "Traceback" not in done.stderr
