"""The lean HTTP/1.1 POST client (gateway.channels._post) against raw servers on loopback,
on both event loops the gateway serves on."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.channels import PostClient, PostResponse, PostTransportError
from gateway.channels._post import BODY_KEEP, ConnectError, RemoteProtocolError
from gateway.local import free_port

T = TypeVar("T")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#: a scripted reply: close the connection without answering
CLOSE = b""
Reply = bytes | Callable[[asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to its end on asyncio's loop or on uvloop."""
    def runner(main: Coroutine[Any, Any, T]) -> T:
        return uvloop.run(main) if request.param == "uvloop" else asyncio.run(main)
    return runner


class Server:
    """A raw HTTP/1.1 server on loopback: answers each request with the next scripted reply
    (bytes, ``CLOSE``, or a coroutine function given the writer) and keeps what it got."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.closed_by_client = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        return await self.start()

    async def start(self, tls: ssl.SSLContext | None = None) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial:
                        self.closed_by_client += 1
                    return
                found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                body = await reader.readexactly(int(found.group(1))) if found else b""
                self.requests.append((head, body))
                reply = self.replies.pop(0) if self.replies else OK
                if reply == CLOSE:
                    return
                if isinstance(reply, bytes):
                    writer.write(reply)
                    await writer.drain()
                else:
                    await reply(writer)
                    return
        except ConnectionError:
            return
        finally:
            writer.close()


async def post(client: PostClient, server: Server, body: bytes = b'{"a":1}',
               headers: tuple[tuple[str, str], ...] = (), host: str = "127.0.0.1",
               connect_to: str | None = None, scheme: str = "http") -> PostResponse:
    return await client.post(scheme=scheme, host=host, port=server.port,
                             target="/hooks/in?x=1", host_header=f"{host}:{server.port}",
                             headers=headers, body=body, connect_to=connect_to)


def new_client(idle: int = 8, tls: ssl.SSLContext | None = None) -> PostClient:
    return PostClient(ssl_context=tls or ssl.create_default_context(), idle=idle,
                      user_agent="test-agent/1")


def test_posts_exactly_the_request_and_reuses_its_connection(run: Any) -> None:
    async def main() -> None:
        async with Server() as server:
            client = new_client()
            first = await post(client, server, headers=(("webhook-id", "msg_1"),))
            second = await post(client, server, body=b"{}")
            await client.aclose()
        assert (first.status, first.reason, second.status) == (200, "OK", 200)
        assert first.headers == {"content-length": "2"}
        head, body = server.requests[0]
        assert head.split(b"\r\n")[0] == b"POST /hooks/in?x=1 HTTP/1.1"
        assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in head
        assert b"\r\nUser-Agent: test-agent/1\r\n" in head
        assert b"\r\nContent-Length: 7\r\n" in head and b"\r\nwebhook-id: msg_1\r\n" in head
        assert body == b'{"a":1}' and server.requests[1][1] == b"{}"
        assert server.connections == 1
    run(main())


def test_a_chunked_body_with_trailers_is_read_and_the_connection_kept(run: Any) -> None:
    chunked = (b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    async def main() -> None:
        async with Server(chunked, OK) as server:
            client = new_client()
            got = await post(client, server)
            again = await post(client, server)
            await client.aclose()
        assert (got.status, got.reason, got.headers["retry-after"]) == (202, "Accepted", "3")
        assert again.status == 200 and server.connections == 1
    run(main())


def test_an_interim_100_continue_is_skipped(run: Any) -> None:
    async def main() -> None:
        async with Server(b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as server:
            client = new_client()
            got = await post(client, server)
            await client.aclose()
        assert got.status == 200
    run(main())


def unfinished(head: bytes) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    """A reply of ``head`` and the start of a body that never ends."""
    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(head + b"some text")
        await writer.drain()
        await asyncio.sleep(30)  # the client must not wait for the rest
    return reply


@pytest.mark.parametrize(("head", "status"), [
    (b"HTTP/1.1 500 Internal Server Error\r\n\r\n", 500),  # runs to the connection's end
    (f"HTTP/1.1 413 Too Large\r\nContent-Length: {BODY_KEEP + 1}\r\n\r\n".encode(), 413),
])
def test_a_body_without_a_length_or_over_the_limit_is_not_waited_for_nor_kept(
        run: Any, head: bytes, status: int) -> None:
    async def main() -> None:
        async with Server(unfinished(head), OK) as server:
            client = new_client()
            got = await asyncio.wait_for(post(client, server), 5)
            again = await post(client, server)
            await client.aclose()
        assert (got.status, again.status, server.connections) == (status, 200, 2)
    run(main())


def test_connection_close_in_the_response_is_honoured(run: Any) -> None:
    async def main() -> None:
        closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        async with Server(closing, OK) as server:
            client = new_client()
            await post(client, server)
            await post(client, server)
            await client.aclose()
        assert server.connections == 2
    run(main())


def test_a_kept_connection_the_server_dropped_unanswered_is_replaced_once(run: Any) -> None:
    async def main() -> None:
        async with Server(OK, CLOSE, OK) as server:
            client = new_client()
            await post(client, server)
            got = await post(client, server, body=b'{"n":2}')
            await client.aclose()
        assert got.status == 200
        assert [body for _, body in server.requests] == [b'{"a":1}', b'{"n":2}', b'{"n":2}']
        assert server.connections == 2
    run(main())


def test_a_new_connection_dropped_unanswered_is_an_error_not_a_retry(run: Any) -> None:
    async def main() -> None:
        async with Server(CLOSE) as server:
            client = new_client()
            with pytest.raises(RemoteProtocolError, match="without a response"):
                await post(client, server)
            await client.aclose()
        assert len(server.requests) == 1
    run(main())


def test_a_response_cut_off_is_an_error_and_not_sent_again(run: Any) -> None:
    async def half(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        await writer.drain()

    async def main() -> None:
        async with Server(OK, half) as server:
            client = new_client()
            await post(client, server)
            with pytest.raises(RemoteProtocolError, match="in the middle of its response"):
                await post(client, server)
            await client.aclose()
        assert len(server.requests) == 2
    run(main())


@pytest.mark.parametrize("reply", [b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
                                   b"HTTP/1.1 2000 OK\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                                   b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
                                   b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n"])
def test_what_is_not_http_is_a_protocol_error(run: Any, reply: bytes) -> None:
    async def main() -> None:
        async with Server(reply) as server:
            client = new_client()
            with pytest.raises(RemoteProtocolError):
                await post(client, server)
            await client.aclose()
    run(main())


def test_a_refused_connection_is_a_connect_error(run: Any) -> None:
    async def main() -> None:
        client = new_client()
        with pytest.raises(ConnectError) as info:
            await client.post(scheme="http", host="127.0.0.1", port=free_port(), target="/",
                              host_header="x", headers=(), body=b"")
        assert isinstance(info.value, PostTransportError) and str(info.value)
    run(main())


def test_a_request_cut_short_by_its_time_limit_drops_its_connection(run: Any) -> None:
    async def silent(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def main() -> None:
        async with Server(silent, OK) as server:
            client = new_client()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await post(client, server)
            got = await post(client, server)
            await client.aclose()
        assert got.status == 200 and server.connections == 2
    run(main())


@pytest.mark.parametrize("header", [("x-a", "1\r\nx-injected: 2"), ("x-a\r\n", "1"),
                                    ("x-a", "nul\0")])
def test_a_line_break_in_a_header_sends_nothing(run: Any, header: tuple[str, str]) -> None:
    async def main() -> None:
        async with Server() as server:
            client = new_client()
            with pytest.raises(ValueError, match="line break"):
                await post(client, server, headers=(header,))
            await client.aclose()
        assert server.connections == 0
    run(main())


def test_idle_connections_past_the_cap_are_closed_oldest_first(run: Any) -> None:
    async def main() -> None:
        async with Server() as first, Server() as second:
            client = new_client(idle=1)
            await post(client, first)
            await post(client, second)
            for _ in range(50):  # the first server sees its connection closed by the client
                if first.closed_by_client:
                    break
                await asyncio.sleep(0.02)
            await post(client, second)
            await client.aclose()
        assert (first.closed_by_client, second.connections) == (1, 1)
    run(main())


def _certificates(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``name`` (signed by a new CA) and a client
    context that trusts only that CA."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(
                ipaddress.ip_address("127.0.0.2"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tmp / "leaf.pem", tmp / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


def test_tls_verifies_the_host_name_at_the_address_it_connects_to(
        run: Any, tmp_path: Path) -> None:
    server_tls, client_tls = _certificates(tmp_path, "hooks.example.test")

    async def main() -> None:
        server = await Server(OK, OK).start(server_tls)
        try:
            client = new_client(tls=client_tls)
            got = await post(client, server, scheme="https", host="hooks.example.test",
                             connect_to="127.0.0.1")
            again = await post(client, server, scheme="https", host="hooks.example.test",
                               connect_to="127.0.0.1")
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await post(client, server, scheme="https", host="other.example.test",
                           connect_to="127.0.0.1")
            await client.aclose()
        finally:
            await server.__aexit__()
        # one connection served both (the refused handshake never reached the server's code)
        assert (got.status, again.status, server.connections) == (200, 200, 1)
        assert b"\r\nHost: hooks.example.test:" in server.requests[0][0]
    run(main())


def test_a_burst_shares_at_most_as_many_connections_as_were_in_flight(run: Any) -> None:
    async def main() -> None:
        async with Server() as server:
            client = new_client(idle=16)
            gate = asyncio.Semaphore(16)  # what the webhook channel's MAX_IN_FLIGHT does

            async def one(i: int) -> int:
                async with gate:
                    return (await post(client, server, body=b'{"i":%d}' % i)).status

            statuses = await asyncio.gather(*(one(i) for i in range(300)))
            await client.aclose()
        assert statuses == [200] * 300 and len(server.requests) == 300
        assert server.connections <= 16
        assert sorted(body for _, body in server.requests) == sorted(
            b'{"i":%d}' % i for i in range(300))
    run(main())
