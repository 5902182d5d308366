"""The egress guard: every outbound connection a channel plugin makes is checked when it connects.

The delivery code runs each ``send`` inside :func:`egress_policy` (see :class:`GuardedSender`).
While a policy is set in the current context, three hooks, installed once on first use, apply
it to the connection layer every plugin ends up in (httpx/anyio, requests/urllib3, smtplib):

* ``socket.getaddrinfo`` resolves once and refuses the whole answer when any address in it is
  refused, so the caller only ever connects to addresses that were checked (no DNS-rebinding
  window between the check and the connection);
* ``socket.socket.connect``/``connect_ex`` check the exact address connected to (IP literals
  never pass through the resolver), and refuse local (``AF_UNIX``) sockets;
* ``loop.run_in_executor`` carries the current context into the worker thread, so blocking
  libraries run in threads (Apprise) are guarded too.

Outside a policy (the Restate SDK's own connections, a test's receivers) nothing changes.
Plugins that start threads of their own must run them with ``contextvars.copy_context()``
(``asyncio.to_thread`` does).

Refused: unspecified, loopback, private (RFC 1918, ``fc00::/7``), link-local (``169.254/16``,
``fe80::/10``), shared/CGNAT (``100.64/10``), multicast, reserved and broadcast, every other
non-global range; IPv4-mapped addresses (``::ffff:0:0/96``) and Teredo (``2001::/32``)
outright; 6to4 (``2002::/16``) and NAT64 (``64:ff9b::/96``) addresses when the IPv4 address
they embed is refused. A channel may reach such targets only when the YAML file says so
(``channels.NAME.allow_private_targets: true``); a subscriber's options never can.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gateway.core import DeliveryError, PermanentDeliveryError

__all__ = [
    "EgressPolicy",
    "EgressRefused",
    "GuardedSender",
    "classify_address",
    "classify_host",
    "current_policy",
    "egress_policy",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("169.254.0.0/16", "link-local"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_RANGES: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
    ("2001::/32", "Teredo"),
)
_V4 = [(ipaddress.IPv4Network(net), why) for net, why in _V4_RANGES]
_V6 = [(ipaddress.IPv6Network(net), why) for net, why in _V6_RANGES]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    return None


def classify_address(ip: IPAddress) -> str | None:
    """Why a connection to ``ip`` is refused (e.g. ``"loopback"``), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(int(ip))  # drop a scope id
        embedded = _embedded_v4(ip)
        if embedded is not None:
            inner, kind = embedded
            why = classify_address(inner)
            if why is not None:
                return f"{why} ({kind} {inner})"
            # a mapped address is never a real IPv6 peer: connect to the IPv4 one instead
            return f"IPv4-mapped ({inner})" if kind == "IPv4-mapped" else None
        table: list[Any] = _V6
    else:
        table = _V4
    for net, why in table:
        if ip in net:
            return str(why)
    if not ip.is_global:
        return "non-public"
    return None


def classify_host(host: str) -> str | None:
    """Why ``host`` (an IP literal or a name) is refused before resolving it, or None."""
    host = host.strip().strip("[]")
    name = host.lower().rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return "loopback"
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    return classify_address(ip)


class EgressRefused(ConnectionRefusedError):
    """A connection the egress guard refused (an ``OSError``: libraries see a failed
    connection; the delivery code turns it into a permanent delivery error)."""


@dataclass
class EgressPolicy:
    """What the current delivery may connect to, and what it was refused."""

    allow_private: bool = False
    what: str = "delivery"
    refused: list[str] = field(default_factory=list)

    def refuse(self, detail: str) -> EgressRefused:
        message = (f"{self.what}: {detail}; refused by the egress guard (the YAML file's "
                   "allow_private_targets for the channel allows private targets)")
        if len(self.refused) < 16:
            self.refused.append(message)
        return EgressRefused(message)


_POLICY: contextvars.ContextVar[EgressPolicy | None] = contextvars.ContextVar(
    "gateway_egress_policy", default=None)


def current_policy() -> EgressPolicy | None:
    """The policy of the delivery running in this context, or None outside deliveries."""
    return _POLICY.get()


def _enforced() -> EgressPolicy | None:
    policy = _POLICY.get()
    return policy if policy is not None and not policy.allow_private else None


@contextmanager
def egress_policy(*, allow_private: bool, what: str) -> Iterator[EgressPolicy]:
    """Apply a policy to every connection made in this context (and threads it starts through
    ``run_in_executor``) until the block ends."""
    _install()
    policy = EgressPolicy(allow_private=allow_private, what=what)
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


# -- the hooks ---------------------------------------------------------------------------

_system_getaddrinfo = socket.getaddrinfo
_socket_connect = socket.socket.connect
_socket_connect_ex = socket.socket.connect_ex
_run_in_executor = asyncio.BaseEventLoop.run_in_executor
_installed = False
_install_lock = threading.Lock()
_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _guarded_getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0,
                         proto: int = 0, flags: int = 0) -> Any:
    infos = _system_getaddrinfo(host, port, family, type, proto, flags)
    policy = _enforced()
    if policy is not None and host is not None:
        shown = host.decode() if isinstance(host, bytes) else str(host)
        for info in infos:
            if info[0] in _IP_FAMILIES:
                address = str(info[4][0])
                why = classify_address(ipaddress.ip_address(address.split("%")[0]))
                if why is not None:
                    raise policy.refuse(
                        f"{shown} is a {why} address" if shown.strip("[]") == address
                        else f"{shown} resolves to {address}, a {why} address")
    return infos


def _checked_address(sock: socket.socket, address: Any) -> Any:
    policy = _enforced()
    if policy is None:
        return address
    if sock.family not in _IP_FAMILIES:
        raise policy.refuse("a local (non-IP) socket")
    host, port = str(address[0]), address[1]
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        # a name: resolve it here (checked), and connect to the address that was checked
        infos = _guarded_getaddrinfo(host, port, sock.family, socket.SOCK_STREAM)
        if not infos:
            raise policy.refuse(f"{host} resolves to no address") from None
        return infos[0][4]
    why = classify_address(ip)
    if why is not None:
        raise policy.refuse(f"{host} is a {why} address")
    return address


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _socket_connect(self, _checked_address(self, address))


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    return _socket_connect_ex(self, _checked_address(self, address))


def _context_run_in_executor(self: asyncio.BaseEventLoop, executor: Any, func: Any,
                             *args: Any) -> asyncio.Future[Any]:
    if _POLICY.get() is not None:
        return _run_in_executor(self, executor, contextvars.copy_context().run, func, *args)
    return _run_in_executor(self, executor, func, *args)


def _install() -> None:
    """Install the hooks (once per process; they do nothing outside a policy)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        socket.getaddrinfo = _guarded_getaddrinfo
        socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
        setattr(asyncio.BaseEventLoop, "run_in_executor", _context_run_in_executor)  # noqa: B010 - typeshed's generic signature
        _installed = True


# -- the delivery side ------------------------------------------------------------------


class GuardedSender:
    """A channel's ``send`` under the egress policy of its channel instance: a connection the
    guard refused makes the attempt fail permanently (retrying cannot help), whatever the
    library made of the refused connection."""

    def __init__(self, channel: Any, *, name: str, allow_private: bool) -> None:
        self.channel = channel
        self.name = name
        self.allow_private = allow_private

    async def send(self, message: Any, options: Any) -> Any:
        with egress_policy(allow_private=self.allow_private,
                           what=f"channel {self.name!r}") as policy:
            try:
                return await self.channel.send(message, options)
            except (DeliveryError, OSError) as exc:
                if not policy.refused:
                    raise
                raise PermanentDeliveryError(policy.refused[0]) from exc
