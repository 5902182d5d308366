"""A lean HTTP/1.1 client for the POSTs a channel sends (the webhook channel's).

Why not httpx here: under a burst, httpx with httpcore, anyio and h11 under it was the largest
part of the gateway's main thread (py-spy, fan-out 1 x 1,000: 27% of its samples innermost in
those four, for one small POST per delivery). This client does only what such a POST needs,
on asyncio's protocol API:

- keep-alive connections, per (scheme, address connected to, port, host name), reused most
  recent first; at most ``size`` idle ones kept (the least recently used closed first), and
  none idle longer than ``IDLE_EXPIRY``;
- TLS verified with the caller's context against the URL's host name, also when the caller
  connects to an address it resolved and checked itself (``connect_to``);
- the response's status line and headers. A body of up to ``BODY_KEEP`` bytes is read and
  dropped, so the connection can serve the next request; a larger one, or one that runs to
  the end of the connection, is not read: the connection is closed instead;
- a kept-alive connection the server closed before it answered anything is replaced once by a
  new one (the server's idle time-out racing the request).

Not here: redirects, cookies, proxies, compression, HTTP/2, streaming bodies. Time limits are
the caller's (``asyncio.timeout`` around ``post``): a request cut short closes its connection.

Errors (``PostTransportError``, nothing else): ``ConnectError`` when no connection could be
made (refused, unreachable, DNS, TLS); ``RemoteProtocolError`` when the server closed it
without a full response or answered what is not HTTP/1.x.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

__all__ = ["ConnectError", "PostClient", "PostResponse", "PostTransportError",
           "RemoteProtocolError"]

#: a response body up to this many bytes is read, so its connection can be used again
BODY_KEEP = 64 * 1024
#: a status line and headers larger than this are refused
HEAD_LIMIT = 64 * 1024
#: seconds an idle connection is kept (servers close theirs after 5 s or more)
IDLE_EXPIRY = 4.0


class PostTransportError(Exception):
    """The request got no (full) response."""


class ConnectError(PostTransportError):
    """No connection to the server: refused, unreachable, not resolved, or TLS failed."""


class RemoteProtocolError(PostTransportError):
    """The server closed the connection without a full response, or did not speak HTTP/1.x."""


class _NoAnswer(RemoteProtocolError):
    """Closed before a single byte of a response came."""


@dataclass(frozen=True, slots=True)
class PostResponse:
    """A response's status line and headers (lower-case names; a repeated one's last value)."""

    status: int
    reason: str
    headers: dict[str, str]


_Key = tuple[str, str, int, str]
_NO_BODY = 0
_LENGTH = 1
_CHUNKED = 2
_TRAILERS = 3
#: a chunk's size: hex digits only (no sign, no 0x)
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class _Connection(asyncio.Protocol):
    """One connection: writes a request, parses its response as the bytes arrive."""

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[PostResponse] | None = None
        self._response: PostResponse | None = None
        self._mode = _NO_BODY
        self._remaining = 0
        self._answered = False  # a byte of the current response came
        self._body_seen = 0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted again
            return
        self._answered = True
        self._buffer += data
        try:
            self._parse()
        except RemoteProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self.reusable = False
        self._ended(None)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self._ended(exc)

    # -- one exchange -----------------------------------------------------------------------

    def start(self, request: bytes) -> asyncio.Future[PostResponse]:
        assert self.transport is not None
        waiter: asyncio.Future[PostResponse] = asyncio.get_running_loop().create_future()
        self._waiter, self._response, self._answered = waiter, None, False
        self._mode, self._remaining, self._body_seen = _NO_BODY, 0, 0
        self._buffer.clear()
        if self.closed or self.transport.is_closing():
            waiter.set_exception(_NoAnswer("the connection was closed before the request"))
        else:
            self.transport.write(request)
        return waiter

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _ended(self, exc: Exception | None) -> None:
        if self._waiter is None or self._waiter.done():
            return
        if not self._answered:
            self._fail(_NoAnswer("the server closed the connection without a response"))
        else:
            detail = f": {exc}" if exc else ""
            self._fail(RemoteProtocolError(
                f"the server closed the connection in the middle of its response{detail}"))

    def _fail(self, exc: RemoteProtocolError) -> None:
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _done(self) -> None:
        assert self._waiter is not None and self._response is not None
        if self._buffer:  # more than the response: not HTTP/1.1 as we speak it
            self.reusable = False
        if not self.reusable:
            self.close()
        self._waiter.set_result(self._response)

    # -- parsing ---------------------------------------------------------------------------

    def _parse(self) -> None:
        while self._response is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > HEAD_LIMIT:
                    raise RemoteProtocolError("response headers over 64 KiB")
                return
            head = bytes(self._buffer[:end])
            del self._buffer[:end + 4]
            self._head(head)
        if self._mode == _LENGTH:
            if len(self._buffer) < self._remaining:
                return
            del self._buffer[:self._remaining]
        elif self._mode in (_CHUNKED, _TRAILERS) and not self._chunks():
            return
        self._done()

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise RemoteProtocolError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
        status = int(code)
        if status < 200:
            if status == 101:
                raise RemoteProtocolError("the server switched protocols")
            return  # an interim response (100 Continue, 103 Early Hints): the real one follows
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise RemoteProtocolError(f"malformed response header: {line[:80]!r}")
            headers[name.lower()] = value.strip()
        self._response = PostResponse(status, reason.strip(), headers)
        connection = headers.get("connection", "").lower()
        if "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection):
            self.reusable = False
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if status in (204, 304):
            self._mode = _NO_BODY
        elif coding is not None:
            if coding.lower().rpartition(",")[2].strip() != "chunked":
                self._unread()  # runs to the end of the connection
            else:
                self._mode, self._remaining = _CHUNKED, 0
        elif length is not None:
            if not length.isdigit():
                raise RemoteProtocolError(f"bad Content-Length: {length[:40]!r}")
            self._mode, self._remaining = _LENGTH, int(length)
            if self._remaining > BODY_KEEP:
                self._unread()
        else:
            self._unread()  # no length: the body runs to the end of the connection

    def _unread(self) -> None:
        """The body is not read: the response is complete as far as the caller is concerned,
        and the connection is closed."""
        self._mode = _NO_BODY
        self.reusable = False
        self._buffer.clear()

    def _chunks(self) -> bool:
        """Consume chunks; True once the last one (and any trailers) came."""
        while True:
            if self._remaining:  # a chunk's data and its CRLF
                if len(self._buffer) < self._remaining:
                    return False
                del self._buffer[:self._remaining]
                self._remaining = 0
            end = self._buffer.find(b"\r\n")
            if end < 0:
                if len(self._buffer) > HEAD_LIMIT:
                    raise RemoteProtocolError("a chunk size line over 64 KiB")
                return False
            if self._mode == _TRAILERS:  # trailers, until an empty line
                del self._buffer[:end + 2]
                if end == 0:
                    return True
                continue
            size_text = bytes(self._buffer[:end]).split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise RemoteProtocolError(f"bad chunk size: {size_text[:40]!r}")
            size = int(size_text, 16)
            del self._buffer[:end + 2]
            if size == 0:
                self._mode = _TRAILERS
                continue
            self._remaining = size + 2
            self._body_seen += size
            if self._body_seen > BODY_KEEP:
                self._unread()
                return True


class PostClient:
    """Keep-alive HTTP/1.1 POSTs (see the module's docstring). One per process and channel;
    its callers bound how many requests are in flight."""

    def __init__(self, *, ssl_context: ssl.SSLContext, idle: int = 64,
                 user_agent: str = "notification-gateway") -> None:
        self._ssl = ssl_context
        self._max_idle = idle
        self._agent = user_agent
        self._idle: dict[_Key, list[_Connection]] = {}
        self._lru: OrderedDict[_Connection, None] = OrderedDict()
        self._closed = False

    async def post(self, *, scheme: str, host: str, port: int, target: str, host_header: str,
                   headers: Sequence[tuple[str, str]], body: bytes,
                   connect_to: str | None = None) -> PostResponse:
        """POST ``body`` to ``scheme://host:port`` + ``target`` (path and query, encoded),
        connecting to ``connect_to`` (an address) instead of resolving ``host`` if given."""
        if scheme not in ("http", "https"):
            raise ValueError(f"{scheme!r}: only http and https")
        request = self._request(target, host_header, headers, body)
        key = (scheme, connect_to or host, port, host)
        conn = self._take(key)
        if conn is not None:
            try:
                return await self._exchange(conn, request)
            except _NoAnswer:
                pass  # closed by the server while idle: once more, on a new connection
        return await self._exchange(await self._connect(key), request)

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._lru):
            conn.close()
        self._idle.clear()
        self._lru.clear()

    def _request(self, target: str, host_header: str, headers: Sequence[tuple[str, str]],
                 body: bytes) -> bytes:
        lines = [f"POST {target} HTTP/1.1", f"Host: {host_header}",
                 f"User-Agent: {self._agent}", "Accept: */*",
                 f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        for line in lines:
            if "\r" in line or "\n" in line or "\0" in line:
                raise ValueError(f"a line break in a request line or header: {line[:40]!r}")
        return "\r\n".join(lines).encode() + b"\r\n\r\n" + body

    async def _exchange(self, conn: _Connection, request: bytes) -> PostResponse:
        waiter = conn.start(request)
        try:
            response = await waiter
        except BaseException:
            conn.abort()  # cut short or failed: never used again
            raise
        if conn.reusable and not conn.closed and not self._closed:
            self._put(conn)
        else:
            conn.close()
        return response

    def _take(self, key: _Key) -> _Connection | None:
        stack = self._idle.get(key)
        now = time.monotonic()
        while stack:
            conn = stack.pop()
            del self._lru[conn]
            if conn.reusable and not conn.closed and now - conn.idle_since < IDLE_EXPIRY:
                return conn
            conn.close()
        return None

    def _put(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, []).append(conn)
        self._lru[conn] = None
        while len(self._lru) > self._max_idle:
            oldest, _ = self._lru.popitem(last=False)
            self._idle[oldest.key].remove(oldest)
            oldest.close()

    async def _connect(self, key: _Key) -> _Connection:
        scheme, address, port, host = key
        tls = scheme == "https"
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(key), host=address, port=port,
                ssl=self._ssl if tls else None, server_hostname=host if tls else None)
        except ssl.SSLError as exc:
            raise ConnectError(str(exc)) from None
        except OSError as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from None
        return conn
