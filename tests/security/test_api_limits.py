"""The public API's own connection limits: slow senders are cut off, idle connections are
closed, the connection cap holds, and an early answer never leaves a half-read connection
that a client would reuse."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress

import httpx
import pytest

from gateway.api import ApiSettings
from gateway.api._limits import ApiLimits
from gateway.channels import discover_plugins
from gateway.config import parse_config
from gateway.core import ConfigError
from tests.api.conftest import KEYS, MAX_BODY, api_config_file, api_url
from tests.api.helpers import new_id
from tests.security.limited_api import ApiThread, serve_limited

pytestmark = [pytest.mark.restate, pytest.mark.edge_only]

__all__ = ["api_config_file", "api_url", "serve_limited"]  # fixtures, used below

AUTH = f"Authorization: Bearer {KEYS.full}\r\n".encode()
SLOW_BODY = (b"POST /v1/hooks/orders HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
             b"Content-Length: 100000\r\n\r\n{")
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Padding: " + b"a" * 2000


def port_of(api: ApiThread) -> int:
    return api.port


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_until_closed(reader: asyncio.StreamReader, limit: float) -> bytes:
    """What the server sent until it closed the connection (a reset counts as closed)."""
    chunks = []
    with suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(65536), limit):
            chunks.append(chunk)
    return b"".join(chunks)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
    first, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 15)
    return int(first.split()[1]), headers, body


async def slow_body(port: int) -> tuple[float, bytes]:
    """Declare a 100000-byte body, send one byte, wait: (seconds until closed, answer)."""
    reader, writer = await connect(port)
    writer.write(SLOW_BODY)
    await writer.drain()
    started = time.monotonic()
    answer = await read_until_closed(reader, 30)
    writer.close()
    return time.monotonic() - started, answer


async def slow_head(port: int) -> tuple[float, bytes]:
    """Send a request head a byte every 0.1 s: (seconds until closed, answer)."""
    reader, writer = await connect(port)
    closed = asyncio.ensure_future(read_until_closed(reader, 30))
    started = time.monotonic()
    for byte in SLOW_HEAD:  # 200 s if never cut off; the test's own bound ends it before
        if closed.done():
            break
        with suppress(ConnectionError):
            writer.write(bytes([byte]))
            await writer.drain()
        await asyncio.wait({closed}, timeout=0.1)
    answer = await asyncio.wait_for(closed, 30)
    writer.close()
    return time.monotonic() - started, answer


async def test_slow_connections_are_closed_while_a_normal_request_succeeds(
    serve_limited: Callable[[ApiLimits], ApiThread],
) -> None:
    limits = ApiLimits(header_timeout=3, body_timeout=3, keep_alive_timeout=3,
                       max_connections=1000)
    api = serve_limited(limits)
    bodies = [asyncio.ensure_future(slow_body(api.port)) for _ in range(200)]
    heads = [asyncio.ensure_future(slow_head(api.port)) for _ in range(20)]
    await asyncio.sleep(0.5)
    assert not any(t.done() for t in (*bodies, *heads)), "the attack ended before it began"

    task_id = new_id("under-attack")
    async with httpx.AsyncClient(base_url=api.url, timeout=20,
                                 headers={"authorization": f"Bearer {KEYS.full}"}) as client:
        created = await client.post("/v1/tasks", json={"task_id": task_id, "prompt": "x"})
        read = await client.get(f"/v1/tasks/{task_id}")
    assert created.status_code == 201, created.text
    assert read.status_code == 200 and read.json()["task_id"] == task_id

    done = await asyncio.wait_for(asyncio.gather(*bodies, *heads), 40)
    body_times = [t for t, _ in done[:200]]
    head_times = [t for t, _ in done[200:]]
    assert all(answer.startswith(b"HTTP/1.1 408 ") for _, answer in done[:200]), done[0]
    assert all(b"connection: close" in answer.lower() for _, answer in done[:200])
    assert all(answer == b"" for _, answer in done[200:])  # cut off in the head: no answer
    # closed at the timeout (with room for a loaded machine), not left open
    assert max(body_times) < 3 + 7 and min(body_times) > 2, body_times
    assert max(head_times) < 3 + 7 and min(head_times) > 2, head_times


async def test_the_connection_cap_holds(serve_limited: Callable[[ApiLimits], ApiThread]) -> None:
    api = serve_limited(ApiLimits(header_timeout=20, max_connections=20))
    await asyncio.sleep(0.5)  # the start-up probe's connection has gone
    held = [await connect(api.port) for _ in range(20)]
    await asyncio.sleep(0.5)
    extra = [await connect(api.port) for _ in range(10)]
    answers = await asyncio.gather(*(read_until_closed(r, 5) for r, _ in extra))
    assert answers == [b""] * 10  # closed at once, unanswered

    async def still_open(reader: asyncio.StreamReader) -> bool:
        try:
            await asyncio.wait_for(reader.read(1), 0.5)
        except TimeoutError:
            return True
        return False

    opened = await asyncio.gather(*(still_open(r) for r, _ in held))
    assert all(opened), [i for i, o in enumerate(opened) if not o]
    async with httpx.AsyncClient(base_url=api.url, timeout=5) as client:
        with pytest.raises(httpx.TransportError):
            await client.get("/healthz")
        for _, writer in held[:5]:
            writer.close()
        await asyncio.sleep(0.5)
        assert (await client.get("/healthz")).status_code == 200
    for _, writer in (*held, *extra):
        writer.close()


async def test_idle_connections_are_closed(
    serve_limited: Callable[[ApiLimits], ApiThread],
) -> None:
    api = serve_limited(ApiLimits(header_timeout=1.5, keep_alive_timeout=1.5))
    request = b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"
    reader, writer = await connect(api.port)
    for _ in range(2):  # kept alive between requests that come promptly
        writer.write(request)
        status, headers, _ = await read_response(reader)
        assert status == 200 and headers.get("connection") != "close"
    started = time.monotonic()
    assert await read_until_closed(reader, 15) == b""
    assert 1 < time.monotonic() - started < 1.5 + 7
    writer.close()

    reader, writer = await connect(api.port)  # connects and never sends a byte
    started = time.monotonic()
    assert await read_until_closed(reader, 15) == b""
    assert 1 < time.monotonic() - started < 1.5 + 7
    writer.close()


def oversized_chunked(limit: int) -> tuple[bytes, bytes]:
    """A chunked request whose body passes ``limit``: (the head and chunks past the limit,
    the rest of the body)."""
    chunk = b"x" * 1024
    chunks = b"".join(b"400\r\n" + chunk + b"\r\n" for _ in range(limit // 1024 + 2))
    return (b"POST /v1/tasks HTTP/1.1\r\nHost: api\r\n" + AUTH +
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'c\r\n{"prompt": "\r\n' + chunks), b'2\r\n"}\r\n0\r\n\r\n'


BAD_IDEMPOTENCY = (b'{"prompt": "x"}', b"Idempotency-Key: " + b"x" * 300 + b"\r\n")


def post(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST /v1/tasks HTTP/1.1\r\nHost: api\r\n" + AUTH + extra +
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
            b"\r\n\r\n" + body)


async def test_after_a_413_the_same_connection_answers_the_next_request(api_url: str) -> None:
    """The sequence that failed: an oversized chunked body (413), then the next request on the
    same keep-alive connection. The server closed the connection after the 413 without
    saying so; now it reads the rest of the body and keeps the connection usable."""
    port = int(api_url.rsplit(":", 1)[1])
    reader, writer = await connect(port)
    for _ in range(3):
        past_the_limit, rest = oversized_chunked(MAX_BODY)
        writer.write(past_the_limit)
        await asyncio.sleep(0.3)  # the server has decided on 413 before the body ends
        writer.write(rest)
        status, headers, body = await read_response(reader)
        assert status == 413 and b"too_large" in body
        assert headers.get("connection") != "close"
        writer.write(post(*BAD_IDEMPOTENCY))
        status, _, body = await read_response(reader)
        assert status == 422 and b"Idempotency-Key" in body
    writer.close()


def test_a_pooled_client_survives_413_then_422(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=15,
                      limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                      headers={"authorization": f"Bearer {KEYS.full}"}) as client:
        for _ in range(10):
            chunks = iter([b'{"prompt": "', *[b"x" * 1024] * (MAX_BODY // 1024 + 2), b'"}'])
            r = client.post("/v1/tasks", content=chunks,
                            headers={"content-type": "application/json"})
            assert r.status_code == 413
            r = client.post("/v1/tasks", json={"prompt": "x"},
                            headers={"Idempotency-Key": "x" * 300})
            assert r.status_code == 422


async def test_an_answer_before_a_slow_body_closes_the_connection(api_url: str) -> None:
    """A 401 given before the body arrived: the rest is not waited for past a short drain,
    and the answer says the connection closes (so no client reuses it half-read)."""
    port = int(api_url.rsplit(":", 1)[1])
    reader, writer = await connect(port)
    writer.write(b"POST /v1/tasks HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n{\"prompt\"")
    started = time.monotonic()
    status, headers, _ = await read_response(reader)
    assert status == 401 and headers["connection"] == "close"
    assert time.monotonic() - started < 2 + 7
    assert await read_until_closed(reader, 10) == b""
    writer.close()


def test_the_limits_are_read_from_the_yaml_file_with_safe_defaults() -> None:
    plugins = discover_plugins()
    defaults = ApiSettings.from_config(parse_config("{}", plugins=plugins, env={})).limits
    assert defaults == ApiLimits(header_timeout=10, body_timeout=30, keep_alive_timeout=30,
                                 max_connections=1000)
    text = ("api:\n  header_timeout: 500ms\n  body_timeout: 1m\n  keep_alive_timeout: 5\n"
            "  max_connections: 64\n")
    limits = ApiSettings.from_config(parse_config(text, plugins=plugins, env={})).limits
    assert limits == ApiLimits(header_timeout=0.5, body_timeout=60, keep_alive_timeout=5,
                               max_connections=64)


def test_bad_limits_are_errors_naming_the_line() -> None:
    text = ("api:\n  header_timeout: 0\n  body_timeout: 2h\n  keep_alive_timeout: soon\n"
            "  max_connections: 0\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=discover_plugins(), source="gw.yaml", env={})
    assert str(caught.value).splitlines() == [
        "gw.yaml:2 api.header_timeout: Input should be greater than 0",
        "gw.yaml:3 api.body_timeout: Input should be less than or equal to 3600",
        "gw.yaml:4 api.keep_alive_timeout: 'soon' is not a duration; write seconds (90) or "
        "30s, 5m, 2h",
        "gw.yaml:5 api.max_connections: Input should be greater than or equal to 1",
    ]
