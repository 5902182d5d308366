"""The egress guard: what it refuses (table-driven over every range), that it applies when
connecting (sockets, threads, httpx, resolvers that answer loopback) and only inside a
delivery, and that through every built-in plugin a target on loopback gets nothing: a failed
receipt, and the listener counts no connection."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest

from gateway.channels import EgressRefused, classify_address, classify_host, egress_policy
from gateway.core import DeliveryState, Subscription, TaskRequest, TaskState, TaskStatus
from gateway.durable import GatewayClient
from tests.conftest import ENGINE_MODES
from tests.security.guarded_gateway import (
    SLACK_HOOK,
    TWILIO_TOKEN,
    ConnectionCounter,
    Guarded,
    guarded_gateway,
    point_names_at,
)

# -- the address classifier -------------------------------------------------------------

REFUSED = [
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("100.127.255.254", "shared (CGNAT)"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.1", "non-public"),          # TEST-NET-1
    ("198.18.0.1", "non-public"),         # benchmarking
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fe80::1", "link-local"),
    ("fe80::1%2", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "non-public"),        # documentation
    ("::ffff:127.0.0.1", "loopback (IPv4-mapped 127.0.0.1)"),
    ("::ffff:10.0.0.1", "private (IPv4-mapped 10.0.0.1)"),
    ("::ffff:169.254.169.254", "link-local (IPv4-mapped 169.254.169.254)"),
    ("::ffff:8.8.8.8", "IPv4-mapped (8.8.8.8)"),
    ("2002:7f00:1::", "loopback (6to4 127.0.0.1)"),
    ("2002:a00:1::1", "private (6to4 10.0.0.1)"),
    ("2002:a9fe:a9fe::", "link-local (6to4 169.254.169.254)"),
    ("2002:6440:1::", "shared (CGNAT) (6to4 100.64.0.1)"),
    ("64:ff9b::7f00:1", "loopback (NAT64 127.0.0.1)"),
    ("64:ff9b::c0a8:101", "private (NAT64 192.168.1.1)"),
    ("64:ff9b::a9fe:a9fe", "link-local (NAT64 169.254.169.254)"),
    ("64:ff9b::0:0", "unspecified (NAT64 0.0.0.0)"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001::1", "Teredo"),
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "100.128.0.1", "172.32.0.1",
          "2606:4700:4700::1111", "2a00:1450:4001::200e", "2002:808:808::", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_refused_ranges(address: str, why: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("host", "why"), [
    ("localhost", "loopback"), ("LOCALHOST.", "loopback"), ("api.localhost", "loopback"),
    ("127.0.0.1", "loopback"), ("[::1]", "loopback"), ("[64:ff9b::7f00:1]", "loopback"),
    ("example.com", None), ("8.8.8.8", None),
])
def test_host_names_and_literals(host: str, why: str | None) -> None:
    assert (classify_host(host) or "").startswith(why or "") and (
        classify_host(host) is None) == (why is None)


# -- the connection layer ------------------------------------------------------------------


@pytest.fixture
def counter() -> Iterator[ConnectionCounter]:
    listening = ConnectionCounter()
    yield listening
    listening.stop()


def _connect(port: int, host: str = "127.0.0.1") -> None:
    with socket.create_connection((host, port), timeout=2):
        pass


def test_a_delivery_cannot_connect_to_loopback_but_others_can(counter: ConnectionCounter) -> None:
    with egress_policy(allow_private=False, what="channel 'x'") as policy:
        with pytest.raises(EgressRefused, match=re.escape("127.0.0.1 is a loopback address")):
            _connect(counter.port)
        with pytest.raises(EgressRefused, match=re.escape("resolves to 127.0.0.1")):
            _connect(counter.port, "localhost")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw:  # connect_ex too
            with pytest.raises(EgressRefused):
                raw.connect_ex(("127.0.0.1", counter.port))
    assert counter.connections == 0
    assert len(policy.refused) == 3 and "channel 'x'" in policy.refused[0]
    _connect(counter.port)  # outside a delivery (Restate's own, a test's): untouched
    assert _wait_count(counter, 1)


def test_the_yaml_allowance_lets_a_delivery_connect(counter: ConnectionCounter) -> None:
    with egress_policy(allow_private=True, what="channel 'lab'"):
        _connect(counter.port)
    assert _wait_count(counter, 1)


def test_local_sockets_are_refused(tmp_path: object) -> None:
    with egress_policy(allow_private=False, what="channel 'x'"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
            with pytest.raises(EgressRefused, match="local"):
                unix.connect("/nonexistent-socket")


async def test_threads_and_httpx_inherit_the_guard(counter: ConnectionCounter,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    point_names_at(monkeypatch, counter.port, "hook.test")
    loop = asyncio.get_running_loop()
    with egress_policy(allow_private=False, what="channel 'x'") as policy:
        with pytest.raises(EgressRefused):
            await loop.run_in_executor(None, _connect, counter.port)  # how Apprise runs
        with pytest.raises(EgressRefused):
            await asyncio.to_thread(_connect, counter.port)
        async with httpx.AsyncClient() as client:
            for url in (f"http://127.0.0.1:{counter.port}/", f"http://hook.test:{counter.port}/",
                        f"http://[::ffff:127.0.0.1]:{counter.port}/"):
                with pytest.raises(httpx.ConnectError):
                    await client.get(url, timeout=5)
        with pytest.raises(EgressRefused, match=re.escape("hook.test resolves to 127.0.0.1")):
            await loop.getaddrinfo("hook.test", 80)
    assert counter.connections == 0 and len(policy.refused) >= 5


def test_one_bad_address_in_an_answer_refuses_the_whole_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A name answering a public and a loopback address (DNS rebinding) is refused at once,
    before any connection is tried."""
    from gateway.channels import _egress

    _egress._install()

    def answer(host: object, port: object, *args: object, **kwargs: object) -> object:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))]

    monkeypatch.setattr(_egress, "_system_getaddrinfo", answer)
    with egress_policy(allow_private=False, what="channel 'x'"):
        with pytest.raises(EgressRefused, match=re.escape("rebind.test resolves to 127.0.0.1")):
            socket.getaddrinfo("rebind.test", 80)
    assert len(socket.getaddrinfo("rebind.test", 80)) == 2  # outside a delivery: as answered


# -- through every built-in plugin, on the real restate-server ------------------------------


@pytest.fixture(scope="module", params=ENGINE_MODES)
def guarded(request: pytest.FixtureRequest) -> Iterator[Guarded]:
    with guarded_gateway(request.param == "always-replay") as running:
        yield running


def _run(guarded: Guarded, subscriber: str | Subscription, *,
         labels: dict[str, str] | None = None) -> TaskStatus:
    task_id = f"egress-{uuid.uuid4().hex[:12]}"
    subs = [] if subscriber == "" else [Subscription.parse(subscriber)]
    with GatewayClient(guarded.ingress) as client:
        client.submit(task_id, TaskRequest(prompt="Report", labels=labels or {},
                                           subscriptions=subs))
        status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.SUCCEEDED, status.error
    return status


def _failed_by_the_guard(status: TaskStatus) -> str:
    [receipt] = status.deliveries
    assert receipt.state is DeliveryState.FAILED, receipt
    assert receipt.last_error and "refused by the egress guard" in receipt.last_error
    assert receipt.attempts == 1  # permanent: not retried
    return receipt.last_error


def _wait_count(counter: ConnectionCounter, at_least: int, timeout: float = 5) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while counter.connections < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    return counter.connections >= at_least


def test_email_to_a_loopback_smtp_server_fails(guarded: Guarded) -> None:
    before = guarded.counter.connections
    error = _failed_by_the_guard(_run(guarded, "email:ops@example.com"))
    assert "127.0.0.1 is a loopback address" in error
    assert guarded.counter.connections == before


def test_the_yaml_allowance_delivers_to_a_loopback_smtp_server(guarded: Guarded) -> None:
    status = _run(guarded, "lab-email:lab@example.com")
    assert [d.state for d in status.deliveries] == [DeliveryState.DELIVERED]
    assert guarded.mailbox.wait_for_recipient("lab@example.com", 1, 10)


def test_a_webhook_name_that_resolves_to_loopback_fails(
        guarded: Guarded, monkeypatch: pytest.MonkeyPatch) -> None:
    point_names_at(monkeypatch, guarded.counter.port, "hook.test")
    before = guarded.counter.connections
    error = _failed_by_the_guard(
        _run(guarded, f"webhook:http://hook.test:{guarded.counter.port}/agent"))
    assert "hook.test resolves to 127.0.0.1" in error
    assert guarded.counter.connections == before


def test_slack_through_a_resolver_pointing_at_loopback_fails(
        guarded: Guarded, monkeypatch: pytest.MonkeyPatch) -> None:
    point_names_at(monkeypatch, guarded.counter.port, "hooks.slack.com")
    before = guarded.counter.connections
    error = _failed_by_the_guard(_run(guarded, f"slack:{SLACK_HOOK}"))
    assert "hooks.slack.com resolves to 127.0.0.1" in error
    assert "abcdefghijklmnop" not in error  # the webhook token stays out of the receipt
    assert guarded.counter.connections == before


def test_sms_through_a_resolver_pointing_at_loopback_fails(
        guarded: Guarded, monkeypatch: pytest.MonkeyPatch) -> None:
    point_names_at(monkeypatch, guarded.counter.port, "api.twilio.com")
    before = guarded.counter.connections
    error = _failed_by_the_guard(_run(guarded, "sms:+15550100001"))
    assert "api.twilio.com resolves to 127.0.0.1" in error
    assert TWILIO_TOKEN not in error
    assert guarded.counter.connections == before


def test_the_operators_own_apprise_subscription_to_loopback_fails(guarded: Guarded) -> None:
    """Trusted (the YAML file's standing subscription) and still guarded: only the channel's
    allow_private_targets lets it reach loopback."""
    before = guarded.counter.connections
    status = _run(guarded, "", labels={"route": "ops-json"})
    error = _failed_by_the_guard(status)
    assert "127.0.0.1 is a loopback address" in error
    assert guarded.counter.connections == before
