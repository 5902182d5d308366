"""The webhook channel against a real loopback receiver verifying with ``standardwebhooks``."""

from __future__ import annotations

import base64
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from email.utils import formatdate

import gateway_channel_webhook as wh
import pytest
from gateway_channel_webhook import (
    WebhookChannel,
    WebhookOptions,
    check_address,
    parse_retry_after,
    sign,
)
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.core import PermanentDeliveryError, TransientDeliveryError
from gateway.local import free_port
from tests.channels.conftest import HttpReceiver, make_message

OLD = "whsec_" + base64.b64encode(b"old-secret-0123456789abcdef").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-0123456789abcdef").decode()
OTHER = "whsec_" + base64.b64encode(b"someone-elses-secret-000000").decode()


@pytest.fixture(autouse=True)
def _no_webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)


@pytest.fixture
async def channel() -> AsyncIterator[WebhookChannel]:
    ch = WebhookChannel()
    yield ch
    await ch.aclose()


def loopback(**fields: object) -> WebhookOptions:
    return WebhookOptions.model_validate({"secret": NEW, "allow_private_targets": True, **fields})


async def test_signed_post_verifies_with_the_reference_library(
    channel: WebhookChannel, http_receiver: HttpReceiver
) -> None:
    message = make_message(http_receiver.url + "/hooks/agent?team=a", data={"output": "42 ✓"})
    receipt = await channel.send(message, loopback())

    assert receipt.provider_status == 200
    [req] = http_receiver.requests
    assert req.path == "/hooks/agent?team=a"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["webhook-id"] == message.id
    assert abs(int(req.headers["webhook-timestamp"]) - time.time()) < 5
    assert Webhook(NEW).verify(req.body, req.headers) == {"output": "42 ✓"}
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(req.body, req.headers)


async def test_empty_data_posts_the_message_summary(
    channel: WebhookChannel, http_receiver: HttpReceiver
) -> None:
    message = make_message(http_receiver.url)
    await channel.send(message, loopback())
    [req] = http_receiver.requests
    assert json.loads(req.body) == {
        "id": message.id,
        "task_id": "task-42",
        "subscription_id": message.subscription_id,
        "kind": "result",
        "subject": message.subject,
        "text": message.text,
    }


@pytest.mark.parametrize("receiver_knows", [NEW, OLD])
async def test_key_rotation_signs_with_every_secret(
    channel: WebhookChannel, http_receiver: HttpReceiver, receiver_knows: str
) -> None:
    await channel.send(make_message(http_receiver.url), loopback(secret=[NEW, OLD]))
    [req] = http_receiver.requests
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    Webhook(receiver_knows).verify(req.body, req.headers)


async def test_retries_of_one_message_carry_the_same_webhook_id(
    channel: WebhookChannel, http_receiver: HttpReceiver
) -> None:
    http_receiver.script.append((503, {}))
    message = make_message(http_receiver.url)
    with pytest.raises(TransientDeliveryError):
        await channel.send(message, loopback())
    await channel.send(message, loopback())
    await channel.send(make_message(http_receiver.url, id="msg_other"), loopback())
    ids = [r.headers["webhook-id"] for r in http_receiver.requests]
    assert ids == [message.id, message.id, "msg_other"]


async def test_extra_headers_are_sent(channel: WebhookChannel, http_receiver: HttpReceiver) -> None:
    await channel.send(make_message(http_receiver.url), loopback(headers={"X-Team": "agents"}))
    assert http_receiver.requests[0].headers["x-team"] == "agents"


async def test_unsigned_only_when_allowed_explicitly(
    channel: WebhookChannel, http_receiver: HttpReceiver
) -> None:
    with pytest.raises(PermanentDeliveryError, match="allow_unsigned"):
        await channel.send(make_message(http_receiver.url), loopback(secret=None))
    assert http_receiver.requests == []
    await channel.send(make_message(http_receiver.url), loopback(secret=None, allow_unsigned=True))
    [req] = http_receiver.requests
    assert "webhook-signature" not in req.headers and req.headers["webhook-id"]


async def test_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", f"{NEW}, {OLD}")
    assert len(WebhookOptions().keys) == 2


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (500, {}, TransientDeliveryError, None),
        (502, {}, TransientDeliveryError, None),
        (503, {"Retry-After": "7"}, TransientDeliveryError, 7.0),
        (429, {"Retry-After": "30"}, TransientDeliveryError, 30.0),
        (408, {}, TransientDeliveryError, None),
        (425, {}, TransientDeliveryError, None),
        (400, {}, PermanentDeliveryError, None),
        (401, {}, PermanentDeliveryError, None),
        (404, {}, PermanentDeliveryError, None),
        (410, {}, PermanentDeliveryError, None),
        (301, {"Location": "http://127.0.0.1:1/elsewhere"}, PermanentDeliveryError, None),
    ],
)
async def test_status_mapping(
    channel: WebhookChannel, http_receiver: HttpReceiver, status: int,
    headers: dict[str, str], error: type[Exception], retry_after: float | None,
) -> None:
    http_receiver.script.append((status, headers))
    with pytest.raises(error) as info:
        await channel.send(make_message(http_receiver.url + "/h?token=secret-q"), loopback())
    exc = info.value
    assert getattr(exc, "status", None) == status
    if isinstance(exc, TransientDeliveryError):
        assert exc.retry_after == retry_after
    assert f"HTTP {status}" in str(exc)
    assert "secret-q" not in str(exc)
    assert len(http_receiver.requests) == 1  # redirects are not followed


async def test_retry_after_as_http_date(
    channel: WebhookChannel, http_receiver: HttpReceiver
) -> None:
    http_receiver.script.append((429, {"Retry-After": formatdate(time.time() + 120, usegmt=True)}))
    with pytest.raises(TransientDeliveryError) as info:
        await channel.send(make_message(http_receiver.url), loopback())
    assert info.value.retry_after is not None and 110 <= info.value.retry_after <= 121


async def test_connection_refused_is_transient(channel: WebhookChannel) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(TransientDeliveryError, match="ConnectError"):
        await channel.send(make_message(url), loopback())


async def test_read_timeout_is_transient(channel: WebhookChannel) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        started = time.monotonic()
        with pytest.raises(TransientDeliveryError,
                           match=r"timed out after 0\.24s \(attempt timeout 0\.3s\)"):
            await channel.send(make_message(url, time_limit=0.3), loopback())
        assert time.monotonic() - started < 3


async def test_private_targets_refused_at_send_time(
    channel: WebhookChannel, http_receiver: HttpReceiver
) -> None:
    port = http_receiver.url.rsplit(":", 1)[1]
    for target in (http_receiver.url, f"http://localhost:{port}/hook"):
        with pytest.raises(PermanentDeliveryError, match="loopback"):
            await channel.send(make_message(target), WebhookOptions(secret=NEW))
    assert http_receiver.requests == []


async def test_resolved_address_is_pinned_and_host_kept(
    channel: WebhookChannel, http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the check passing, the request goes to the address that was checked, and the
    receiver still sees the original host name."""
    checked: list[str] = []

    def allow_all(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        checked.append(str(ip))
        return None

    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address]:
        assert host == "hooks.example.test"
        return [ipaddress.IPv4Address("127.0.0.1")]

    monkeypatch.setattr(wh, "check_address", allow_all)
    monkeypatch.setattr(channel, "_resolve", resolve)
    port = http_receiver.url.rsplit(":", 1)[1]
    await channel.send(make_message(f"http://hooks.example.test:{port}/pinned"),
                       WebhookOptions(secret=NEW))
    [req] = http_receiver.requests
    assert req.path == "/pinned"
    assert req.headers["host"] == f"hooks.example.test:{port}"
    assert checked == ["127.0.0.1"]
    Webhook(NEW).verify(req.body, req.headers)


# -- options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "loc", "says"),
    [
        ("secret", ("secret",), "must start with 'whsec_'"),
        ("whsec_not base64!", ("secret",), "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), ("secret",), "at least 16"),
        ([NEW, "nope"], ("secret",), "item 1"),
    ],
)
def test_bad_secret_fails_naming_the_field(secret: object, loc: tuple[str], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebhookOptions.model_validate({"secret": secret})
    [err] = info.value.errors()
    assert err["loc"][0] == "secret" and says in err["msg"]


def test_a_bad_secret_is_not_echoed_in_the_error() -> None:
    with pytest.raises(ValidationError) as info:
        WebhookOptions.model_validate({"secret": "whsec_c2hvcnQ"})
    assert "c2hvcnQ" not in str(info.value)


def test_secret_is_not_in_the_options_repr() -> None:
    assert NEW not in repr(WebhookOptions(secret=NEW))


def test_unpadded_secret_is_accepted() -> None:
    assert WebhookOptions(secret=NEW.rstrip("=")).keys == WebhookOptions(secret=NEW).keys


@pytest.mark.parametrize("name", ["webhook-id", "Webhook-Signature", "Content-Type", "Host"])
def test_reserved_headers_cannot_be_overridden(name: str) -> None:
    with pytest.raises(ValidationError, match="cannot be overridden"):
        WebhookOptions.model_validate({"secret": NEW, "headers": {name: "x"}})


def test_signature_matches_the_spec_example() -> None:
    # the example of the Standard Webhooks specification
    secret = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, [secret]) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


# -- targets ---------------------------------------------------------------------------

STRICT = WebhookOptions(secret=NEW)


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("https://example.com/hook", None),
        ("http://example.com:8080/a/b?c=d", None),
        ("https://93.184.216.34/hook", None),
        ("https://[2606:2800:220:1:248:1893:25c8:1946]/hook", None),
        ("ftp://example.com/hook", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https:///nohost", "no host"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://token@example.com/hook", "credentials"),
        ("https://example.com:99999/hook", "out of range"),
        ("https://exa mple.com/hook", "white space"),
        ("http://127.0.0.1/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://api.localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://172.16.0.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://[::1]/hook", "loopback"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[fd00::1]/hook", "private"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://100.64.0.1/hook", "shared"),
    ],
)
def test_target_validation(target: str, says: str | None) -> None:
    channel = WebhookChannel()
    if says is None:
        assert channel.validate_target(target, STRICT) == target
    else:
        with pytest.raises(ValueError, match=says):
            channel.validate_target(target, STRICT)


def test_private_targets_allowed_explicitly() -> None:
    opts = WebhookOptions(secret=NEW, allow_private_targets=True)
    assert WebhookChannel().validate_target("http://127.0.0.1:9/h", opts) == "http://127.0.0.1:9/h"


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("https://example.com/hooks/a?token=s3cret#frag", "https://example.com/hooks/a"),
        ("https://user:pw@example.com:8443/h", "https://example.com:8443/h"),
        ("http://[::1]:8080/x?y=z", "http://[::1]:8080/x"),
    ],
)
def test_redact_target(target: str, shown: str) -> None:
    assert WebhookChannel().redact_target(target) == shown


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), ("0", 0.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), ("", None),
     (None, None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_check_address() -> None:
    assert check_address(ipaddress.ip_address("8.8.8.8")) is None
    assert check_address(ipaddress.ip_address("127.0.0.2")) == "loopback"
