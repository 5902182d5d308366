"""Several Restate ingress URLs: the API's link to Restate fails over to the next node when a
connection cannot be made, never repeats a request that was sent, and keeps using the node
that answered. The transport is httpx's MockTransport standing in for three nodes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway.api.restate_link import RestateFailed, RestateLink
from gateway.cli.app import app
from gateway.core.errors import EngineError, UserInputError
from gateway.durable.client import GatewayClient
from gateway.durable.ingress_urls import IngressUrls, parse_ingress_urls

A, B, C = "http://node-a:8080", "http://node-b:8080", "http://node-c:8080"
ADMIN = "http://admin:9070"


class Nodes:
    """Three ingress nodes; ``down`` refuse connections, ``broken`` drop a sent request."""

    def __init__(self, down: Iterable[str] = (), broken: Iterable[str] = ()) -> None:
        self.down, self.broken = set(down), set(broken)
        self.seen: list[str] = []  # "host path" of every request that reached a node

    def handle(self, request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        if base in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        self.seen.append(f"{request.url.host} {request.url.path}")
        if base in self.broken:
            raise httpx.ReadError("connection reset", request=request)
        if request.url.path.endswith("/health"):
            return httpx.Response(200)
        return httpx.Response(200, json={"invocationId": "inv_1", "status": "Accepted",
                                         "node": request.url.host})


def link_to(nodes: Nodes, spec: str = f"{A},{B},{C}") -> RestateLink:
    link = RestateLink(spec, ADMIN)
    link._client = httpx.AsyncClient(transport=httpx.MockTransport(nodes.handle))
    return link


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_a_refused_connection_goes_to_the_next_node_and_stays_there() -> None:
    nodes = Nodes(down={A})
    link = link_to(nodes)

    async def go() -> None:
        first = await link.start("t-1", json.dumps({"prompt": "x"}).encode())
        second = await link.start("t-2", json.dumps({"prompt": "x"}).encode())
        assert first.new and second.new
        await link.aclose()

    run(go())
    # each task reached node B once; the second call did not knock on A again
    assert nodes.seen == ["node-b /restate/send/AsyncNotificationsAgent/t-1/run",
                          "node-b /restate/send/AsyncNotificationsAgent/t-2/run"]


def test_when_the_preferred_node_dies_the_link_moves_on_and_wraps_around() -> None:
    nodes = Nodes()
    link = link_to(nodes)

    async def go() -> None:
        await link.start("t-1", b"{}")
        nodes.down = {A, B}
        await link.start("t-2", b"{}")
        nodes.down = {C}
        await link.start("t-3", b"{}")  # C was preferred: then A, B in order
        await link.aclose()

    run(go())
    assert [s.split()[0] for s in nodes.seen] == ["node-a", "node-c", "node-a"]


def test_a_request_that_was_sent_is_not_repeated_on_another_node() -> None:
    nodes = Nodes(broken={A})
    link = link_to(nodes)

    async def go() -> None:
        with pytest.raises(RestateFailed, match="node-a:8080 is not reachable \\(ReadError\\)"):
            await link.subscribe("t-1", b'{"channel": "webhook"}')
        await link.aclose()

    run(go())
    assert nodes.seen == ["node-a /restate/call/AsyncNotificationsAgent/t-1/subscribe"]


def test_every_node_down_is_one_error_naming_them() -> None:
    link = link_to(Nodes(down={A, B, C}))

    async def go() -> None:
        with pytest.raises(RestateFailed) as caught:
            await link.status("t-1")
        assert not caught.value.reachable
        assert str(caught.value) == (f"Restate at {A}, {B}, {C} is not reachable "
                                     "(ConnectError, ConnectError, ConnectError)")
        await link.aclose()

    run(go())


def test_readiness_holds_while_one_ingress_answers() -> None:
    nodes = Nodes(down={A, B})
    link = link_to(nodes)

    async def go() -> None:
        assert await link.readiness() is None
        nodes.down = {A, B, C}
        assert await link.readiness() == "Restate is not reachable"
        await link.aclose()

    run(go())


def test_a_real_refused_port_fails_over_to_a_real_node() -> None:
    """No mock: a loopback port nobody listens on, then a loopback server that answers."""
    from gateway.local import free_port
    from tests.support.service import ServiceThread

    async def ingress(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body",
                    "body": b'{"invocationId": "inv_1", "status": "Accepted"}'})

    server = ServiceThread(ingress).start()
    try:
        dead = f"http://127.0.0.1:{free_port()}"
        link = RestateLink(f"{dead},{server.url}", ADMIN)

        async def go() -> None:
            assert (await link.start("t-1", b"{}")).new
            await link.aclose()

        run(go())
        assert link.ingress.in_order()[0] == server.url.rstrip("/")
    finally:
        server.stop()


def test_the_url_list_is_parsed_in_order_without_duplicates() -> None:
    assert parse_ingress_urls(f" {A}/ , {B},{A}") == (A, B)
    assert IngressUrls(A).in_order() == [A]
    urls = IngressUrls(f"{A},{B},{C}")
    urls.answered(B)
    assert urls.in_order() == [B, C, A]


@pytest.mark.parametrize(("spec", "says"), [
    (f"{A},,{B}", "has an empty entry"),
    ("node-a:8080", "is not an http\\(s\\) URL with a host"),
    ("ftp://node-a", "is not an http\\(s\\) URL with a host"),
    (f"{A}?x=1", "has a query or fragment"),
])
def test_a_bad_url_list_says_what_to_change(spec: str, says: str) -> None:
    with pytest.raises(UserInputError, match=says) as caught:
        parse_ingress_urls(spec)
    assert "several separated by commas" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("command", [["serve", "--only", "api"], ["up"]])
def test_serve_and_up_refuse_a_bad_url_list_in_one_line(command: list[str]) -> None:
    r = CliRunner().invoke(app, [*command, "--restate-ingress-url", f"{A},,{B}",
                                 "--restate-admin-url", ADMIN])
    assert r.exit_code == 2, r.output
    assert "has an empty entry" in r.output and "Traceback" not in r.output


def test_the_ingress_client_of_the_cli_fails_over_too() -> None:
    nodes = Nodes(down={A})
    status = {"task_id": "t-1", "state": "running", "deliveries": []}

    def handle(request: httpx.Request) -> httpx.Response:
        nodes.handle(request)  # refuses A, records B
        return httpx.Response(200, json=status)

    with GatewayClient(f"{A},{B}", client=httpx.Client(
            transport=httpx.MockTransport(handle))) as client:
        assert client.status("t-1").task_id == "t-1"
        assert client.status("t-1").task_id == "t-1"
    assert nodes.seen == ["node-b /restate/call/AsyncNotificationsAgent/t-1/status"] * 2


def test_the_ingress_client_names_every_url_when_none_answers() -> None:
    with GatewayClient(f"{A},{B}", client=httpx.Client(
            transport=httpx.MockTransport(Nodes(down={A, B}).handle))) as client, \
            pytest.raises(EngineError, match=f"ingress at {A}, {B} \\(connection refused\\)"):
        client.status("t-1")


def test_a_password_in_an_ingress_url_is_never_shown() -> None:
    secret = "s3cret-ingress-pass"
    link = link_to(Nodes(down={A, "http://node-b:8080"}), f"{A},http://gw:{secret}@node-b:8080")

    async def go() -> None:
        with pytest.raises(RestateFailed) as caught:
            await link.status("t-1")
        assert secret not in str(caught.value) and "gw:***@node-b" in str(caught.value)
        await link.aclose()

    run(go())
    assert secret not in link.ingress_url
    with pytest.raises(UserInputError) as bad:
        parse_ingress_urls(f"gw:{secret}@node-b:8080")
    assert secret not in str(bad.value)
