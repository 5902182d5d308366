"""Smaller hardening: /metrics does not query Restate per scrape, answers do not name
Restate's internal URLs, and blank identity keys fail closed."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.api import RestateLink, create_api, encode_public_key, parse_identity_keys
from gateway.api._limits import ApiLimits
from gateway.api._single_flight import SingleFlight
from gateway.core import UserInputError
from gateway.local import free_port
from tests.api.conftest import KEYS, api_config_file, load_api
from tests.security.limited_api import ApiThread, serve_limited
from tests.support.service import listening

__all__ = ["api_config_file", "serve_limited"]  # fixtures, used below

AUTH = {"authorization": f"Bearer {KEYS.full}"}


class CountingLink(RestateLink):
    """The real link to Restate, counting the SQL queries it sends the admin API."""

    queries = 0

    async def _request(self, method: str, url: str, body: bytes | None = None,
                       accept: str | None = None,
                       idempotency_key: str | None = None) -> httpx.Response:
        if url.endswith("/query"):
            type(self).queries += 1
        return await super()._request(method, url, body, accept, idempotency_key)


def waiting_figure(text: str) -> float:
    line = next(ln for ln in text.splitlines()
                if ln.startswith("gateway_subscriptions_waiting "))
    return float(line.split()[1])


@pytest.mark.restate
@pytest.mark.edge_only
async def test_500_concurrent_scrapes_make_one_query(
    serve_limited: Callable[..., ApiThread],
) -> None:
    CountingLink.queries = 0
    api = serve_limited(ApiLimits(), CountingLink)
    async with httpx.AsyncClient(base_url=api.url, timeout=60,
                                 limits=httpx.Limits(max_connections=500)) as client:
        started = time.monotonic()
        answers = await asyncio.gather(*(client.get("/metrics") for _ in range(500)))
        took = time.monotonic() - started
        assert [r.status_code for r in answers] == [200] * 500
        assert all(waiting_figure(r.text) >= 0 for r in answers)  # Restate's answer, not NaN
        # one query per 5 s at most, however many scrapes (a loaded machine may need more
        # than 5 s to open 500 connections)
        assert 1 <= CountingLink.queries <= 1 + int(took / 5), (CountingLink.queries, took)
        await asyncio.sleep(5.5)  # then the figure is asked again, once
        before = CountingLink.queries
        answers = await asyncio.gather(*(client.get("/metrics") for _ in range(20)))
        assert [r.status_code for r in answers] == [200] * 20
        assert CountingLink.queries == before + 1


async def test_concurrent_callers_share_one_run_and_it_is_reused_for_the_ttl() -> None:
    now = [100.0]
    calls = 0
    gate = asyncio.Event()

    async def refresh() -> None:
        nonlocal calls
        calls += 1
        await gate.wait()

    flight = SingleFlight(refresh, ttl=5, clock=lambda: now[0])
    waiting = [asyncio.ensure_future(flight()) for _ in range(500)]
    await asyncio.sleep(0.05)
    assert calls == 1 and not any(w.done() for w in waiting)  # all wait for the one run
    waiting[0].cancel()  # a scrape that goes away does not cancel the run of the others
    gate.set()
    await asyncio.wait_for(asyncio.gather(*waiting[1:]), 10)
    now[0] += 4.9
    await flight()
    assert calls == 1
    now[0] += 0.2
    await flight()
    assert calls == 2


class _Broken(BaseHTTPRequestHandler):
    """A loopback stand-in for a Restate that answers every request with an internal error
    naming internal addresses (what must not reach API callers)."""

    def _answer(self) -> None:
        body = b'{"message": "partition 3 at http://10.9.8.7:5122 unavailable"}'
        self.send_response(500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def broken_restate() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def api_client(config: Path, ingress: str, admin: str) -> TestClient:
    runtime, settings = load_api(config)
    app, _ = create_api(settings, runtime, RestateLink(ingress, admin))
    return TestClient(app, headers=AUTH)


def test_answers_do_not_name_restates_urls_the_log_does(
    api_config_file: Path, broken_restate: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    down = f"http://127.0.0.1:{free_port()}"
    with api_client(api_config_file, down, down + "/admin") as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "not_ready", "reason": "Restate is not reachable"}
        r = client.post("/v1/tasks", json={"prompt": "x"})
        assert r.status_code == 503 and r.json()["error"] == "restate_unavailable"
        assert r.json()["message"] == "Restate is not reachable; try again shortly"
    with api_client(api_config_file, broken_restate, broken_restate) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "HTTP 500" in ready.json()["reason"]
        r = client.get("/v1/tasks/t-1")
        assert r.status_code == 502 and r.json()["error"] == "restate_error"
        answers = ready.text + r.text
    port = down.rsplit(":", 1)[1]
    assert port not in answers and "127.0.0.1" not in answers and "10.9.8.7" not in answers
    assert down in caplog.text and "10.9.8.7" in caplog.text  # the operator still sees them


_KEY_A = encode_public_key(b"\x01" * 32)
_KEY_B = encode_public_key(b"\x02" * 32)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (" , ", "is blank"),
        ("", "is blank"),
        ("  ", "is blank"),
        (f"{_KEY_A},", "item 2 of 2 is empty"),
        (f"{_KEY_A}, ,{_KEY_B}", "item 2 of 3 is empty"),
        ("not-a-key", "item 1 'not-a-key' does not start with publickeyv1_"),
        ("publickeyv1_", "item 1 'publickeyv1_' decodes to 0 bytes, not 32"),
    ],
)
def test_unusable_identity_keys_are_refused(value: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        parse_identity_keys(value)


def test_identity_keys_that_are_given_are_kept() -> None:
    assert parse_identity_keys(None) == []
    assert parse_identity_keys(f" {_KEY_A} , {_KEY_B} ") == [_KEY_A, _KEY_B]


def test_serve_with_blank_identity_keys_refuses_to_start(tmp_path: Path) -> None:
    """By the flag and by the environment: exit 2 with one line, nothing served."""
    runs = []
    for how in ("flag", "env"):
        ports = [free_port(), free_port()]
        args = [sys.executable, "-m", "gateway", "serve", "--restate-port", str(ports[0]),
                "--api-port", str(ports[1])]
        env = {k: v for k, v in os.environ.items() if k != "GATEWAY_IDENTITY_KEYS"}
        if how == "flag":
            args += ["--identity-keys", " , "]
        else:
            env["GATEWAY_IDENTITY_KEYS"] = " , "
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        runs.append((how, proc, ports))
    for how, proc, ports in runs:
        try:
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == 2, (how, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "GATEWAY_IDENTITY_KEYS" in lines[0], (how, err)
        assert "is blank" in lines[0]
        assert not any(listening(p) for p in ports)
