"""The apprise channel and the shared Apprise runner, against a loopback receiver."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import pytest
from apprise import AppriseResultStatus
from gateway_channel_apprise import (
    AppriseChannel,
    AppriseOptions,
    AppriseOutcome,
    classify,
    privacy_url,
    scrub,
    secrets_of,
)

from gateway.core import PermanentDeliveryError, TransientDeliveryError
from gateway.local import free_port
from tests.channels.conftest import HttpReceiver, make_message


@pytest.fixture
async def channel() -> AsyncIterator[AppriseChannel]:
    ch = AppriseChannel()
    yield ch
    await ch.aclose()


def json_url(receiver: HttpReceiver, path: str = "/notify", query: str = "") -> str:
    return receiver.url.replace("http://", "json://") + path + query


async def test_delivers_through_any_apprise_url(
    channel: AppriseChannel, http_receiver: HttpReceiver
) -> None:
    receipt = await channel.send(make_message(json_url(http_receiver)), AppriseOptions())
    assert receipt.detail == "accepted by JSON"
    [req] = http_receiver.requests
    assert req.path == "/notify"
    body = json.loads(req.body)
    assert (body["title"], body["message"]) == ("Task task-42 finished",
                                                "The agent says: all done.")


async def test_html_body_when_asked(channel: AppriseChannel, http_receiver: HttpReceiver) -> None:
    message = make_message(json_url(http_receiver), html="<p>done</p>")
    await channel.send(message, AppriseOptions(body_format="html"))
    assert json.loads(http_receiver.requests[0].body)["message"] == "<p>done</p>"


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, TransientDeliveryError), (503, TransientDeliveryError),
     (429, TransientDeliveryError), (408, TransientDeliveryError),
     (404, PermanentDeliveryError), (400, PermanentDeliveryError),
     (401, PermanentDeliveryError)],
)
async def test_status_mapping(
    channel: AppriseChannel, http_receiver: HttpReceiver, status: int, error: type[Exception]
) -> None:
    http_receiver.script.append((status, {}))
    target = json_url(http_receiver).replace("json://", "json://user:hunter2pw@")
    with pytest.raises(error) as info:
        await channel.send(make_message(target), AppriseOptions())
    assert getattr(info.value, "status", None) == status
    assert "hunter2pw" not in str(info.value)


async def test_optional_flag_does_not_hide_a_failure(
    channel: AppriseChannel, http_receiver: HttpReceiver
) -> None:
    http_receiver.script.append((500, {}))
    with pytest.raises(TransientDeliveryError):
        await channel.send(make_message(json_url(http_receiver, query="?optional=yes")),
                           AppriseOptions())


async def test_connection_refused_is_transient(channel: AppriseChannel) -> None:
    with pytest.raises(TransientDeliveryError):
        await channel.send(make_message(f"json://127.0.0.1:{free_port()}/x"), AppriseOptions())


async def test_a_service_that_never_answers_times_out_transiently(
    channel: AppriseChannel,
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = f"json://127.0.0.1:{silent.getsockname()[1]}/x?rto=2"
        started = time.monotonic()
        # the attempt's time limit, less a fifth: Apprise's own error comes first
        with pytest.raises(TransientDeliveryError, match=r"did not finish within 0\.4s"):
            await channel.send(make_message(target, time_limit=0.5), AppriseOptions())
        assert time.monotonic() - started < 2


async def test_a_blocked_service_does_not_block_the_event_loop(
    channel: AppriseChannel, http_receiver: HttpReceiver
) -> None:
    """While Apprise waits 0.4 s on a service that never answers, the loop keeps running."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    tick_task = asyncio.create_task(ticker())
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        stuck = f"json://127.0.0.1:{silent.getsockname()[1]}/x?rto=2"
        try:
            results = await asyncio.gather(
                channel.send(make_message(stuck, time_limit=0.5), AppriseOptions()),
                *(channel.send(make_message(json_url(http_receiver, f"/n{i}")), AppriseOptions())
                  for i in range(5)),
                return_exceptions=True,
            )
        finally:
            tick_task.cancel()
    assert isinstance(results[0], TransientDeliveryError)
    assert sorted(r.path for r in http_receiver.requests) == [f"/n{i}" for i in range(5)]
    assert ticks >= 40  # ~80 if the loop was free for the whole 0.4 s


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("json://example.com/hook", None),
        ("discord://123456/abcdefTOKEN", None),
        ("mailto://user:pw@example.com", None),
        ("tgram://123456789:abcdefghijklmnopqrstuvwxyz0123456789/12315544", None),
        ("nosuchservice://x", "not a URL Apprise can parse"),
        ("https//example.com", "not a URL Apprise can parse"),
        ("not a url at all", "not a URL Apprise can parse"),
        ("", "not a URL Apprise can parse"),
        ("tgram://not-a-bot-token/1", "not a URL Apprise can parse|not usable"),
    ],
)
def test_target_validation(url: str, says: str | None) -> None:
    channel = AppriseChannel()
    if says is None:
        assert channel.validate_target(url, AppriseOptions()) == url
    else:
        with pytest.raises(ValueError, match=says) as info:
            channel.validate_target(url, AppriseOptions())
        assert "bot-token" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "hidden"),
    [
        ("discord://123456/abcdefTOKENxyz", "abcdefTOKENxyz"),
        ("json://user:hunter2pw@example.com/hook", "hunter2pw"),
        ("tgram://123456789:abcdefghijklmnopqrstuvwxyz0123456789/12315544",
         "abcdefghijklmnopqrstuvwxyz0123456789"),
    ],
)
def test_redact_uses_the_privacy_url(url: str, hidden: str) -> None:
    shown = AppriseChannel().redact_target(url)
    assert hidden not in shown
    assert shown.split("://")[0] == url.split("://")[0]
    assert hidden in secrets_of(url)


def test_unparsable_target_is_redacted_to_its_scheme() -> None:
    assert privacy_url("nosuchservice://secret-token") == "nosuchservice://…"


def test_scrub() -> None:
    assert scrub("token abc123 and abc123", ["abc123"]) == "token [redacted] and [redacted]"


@pytest.mark.parametrize(
    ("status", "messages", "error", "code"),
    [
        (AppriseResultStatus.SUCCESS, (), None, None),
        (AppriseResultStatus.TIMEOUT, (), TransientDeliveryError, None),
        (AppriseResultStatus.NOMATCH, (), PermanentDeliveryError, None),
        (AppriseResultStatus.FAILURE, ("Failed: Bad Gateway, error=502.",),
         TransientDeliveryError, 502),
        (AppriseResultStatus.FAILURE, ("Failed: Forbidden, error=403.",),
         PermanentDeliveryError, 403),
        (AppriseResultStatus.FAILURE, ("Failed, error=20503.",), TransientDeliveryError, 503),
        (AppriseResultStatus.FAILURE, ("Failed, error=21614.",), PermanentDeliveryError, None),
        (AppriseResultStatus.FAILURE, ("SMTP recipient a@b.c was refused: 550 no",),
         PermanentDeliveryError, None),
        (AppriseResultStatus.FAILURE, ("SMTP recipient a@b.c was refused: 451 later",),
         TransientDeliveryError, None),
        (AppriseResultStatus.FAILURE, ("A Connection error occurred.",),
         TransientDeliveryError, None),
        (AppriseResultStatus.FAILURE, ("something odd",), TransientDeliveryError, None),
    ],
)
def test_classify(
    status: AppriseResultStatus, messages: tuple[str, ...], error: type[Exception] | None,
    code: int | None,
) -> None:
    outcome = AppriseOutcome(status, "Svc", messages)
    if error is None:
        assert classify(outcome, what="x", timeout=1).detail == "accepted by Svc"
        return
    with pytest.raises(error) as info:
        classify(outcome, what="x", timeout=1)
    assert getattr(info.value, "status", None) == code
