"""The slack channel: the exact request Slack would receive, intercepted where urllib (which
slack-sdk sends with) opens the HTTPS connection: the Slack host is never contacted."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message as Headers
from http import HTTPStatus
from urllib.error import URLError
from urllib.response import addinfourl

import pytest
from gateway_channel_slack import SlackChannel, SlackOptions, default_blocks
from pydantic import ValidationError

from gateway.core import PermanentDeliveryError, TransientDeliveryError
from tests.channels.conftest import make_message

HOOK = "https://hooks.slack.com/services/T00000001/B00000002/abcdefSECRET0123456789"
OTHER_HOOK = "https://hooks.slack.com/services/T00000003/B00000004/zyxwvuSECRET9876543210"
BOT = "xoxb-1234-5678-SECRETtoken"
POST_MESSAGE = "https://slack.com/api/chat.postMessage"
HEADER = {"type": "header", "text": {"type": "plain_text", "text": "Task task-42 finished"}}
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "The agent says: all done."}}
FALLBACK = "Task task-42 finished"


@dataclass
class Sent:
    url: str
    headers: dict[str, str]
    body: object


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    error: OSError | None = None
    #: held until this is set (at most 5 s): Slack not answering
    hold: threading.Event | None = None


@dataclass
class SlackHost:
    """Stands in for Slack's HTTPS servers: replies by URL and records every request."""

    replies: dict[str, Reply] = field(default_factory=dict)
    requests: list[Sent] = field(default_factory=list)

    def add(self, url: str, *, status: int = 200, body: str | None = None,
            json_body: object = None, headers: dict[str, str] | None = None,
            error: OSError | None = None) -> None:
        content = json.dumps(json_body) if json_body is not None else (body or "")
        self.replies[url] = Reply(status, content.encode(), headers or {}, error)

    def open(self, req: urllib.request.Request) -> addinfourl:
        data = req.data
        assert isinstance(data, bytes)
        self.requests.append(Sent(req.full_url, dict(req.header_items()), json.loads(data)))
        reply = self.replies[req.full_url]
        if reply.hold is not None:
            reply.hold.wait(5)
        if reply.error is not None:
            raise URLError(reply.error)
        headers = Headers()
        for name, value in reply.headers.items():
            headers[name] = value
        response = addinfourl(io.BytesIO(reply.body), headers, req.full_url, reply.status)
        response.msg = HTTPStatus(reply.status).phrase  # type: ignore[attr-defined]
        return response


@pytest.fixture(autouse=True)
def _no_slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackHost]:
    host = SlackHost()
    for proxy in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(urllib.request.HTTPSHandler, "https_open",
                        lambda handler, req: host.open(req))
    yield host


@pytest.fixture
async def channel() -> AsyncIterator[SlackChannel]:
    ch = SlackChannel()
    yield ch
    await ch.aclose()


async def test_incoming_webhook_payload(channel: SlackChannel, slack: SlackHost) -> None:
    slack.add(HOOK, body="ok")
    mrkdwn = "Report is *ready*: <https://example.com|open> &amp; enjoy"
    message = make_message(HOOK, text=mrkdwn)
    receipt = await channel.send(message, SlackOptions())

    assert receipt.detail == "accepted by Slack"
    assert receipt.provider_status == 200
    [sent] = slack.requests
    assert sent.url == HOOK
    assert sent.headers["Content-type"] == "application/json;charset=utf-8"
    assert "Authorization" not in sent.headers
    assert sent.body == {"text": FALLBACK, "blocks": [
        HEADER, {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}},
    ]}


async def test_bot_token_posts_to_the_channel(channel: SlackChannel, slack: SlackHost) -> None:
    slack.add(POST_MESSAGE, json_body={"ok": True, "channel": "C1", "ts": "1.2"})
    receipt = await channel.send(make_message("#agents"),
                                 SlackOptions(bot_token=BOT, username="Agent"))

    assert (receipt.provider_status, receipt.provider_id) == (200, "1.2")
    [sent] = slack.requests
    assert sent.url == POST_MESSAGE
    assert sent.headers["Authorization"] == f"Bearer {BOT}"
    assert sent.body == {"channel": "#agents", "text": FALLBACK, "blocks": [HEADER, SECTION],
                         "username": "Agent"}


async def test_bot_token_from_environment(
    channel: SlackChannel, slack: SlackHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", f"  {BOT} ")
    slack.add(POST_MESSAGE, json_body={"ok": True})
    await channel.send(make_message("C0123ABCD"), SlackOptions())
    [sent] = slack.requests
    assert sent.headers["Authorization"] == f"Bearer {BOT}"
    assert isinstance(sent.body, dict) and sent.body["channel"] == "C0123ABCD"


async def test_channel_through_the_configured_webhook(
    channel: SlackChannel, slack: SlackHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", OTHER_HOOK)
    slack.add(OTHER_HOOK, body="ok")
    await channel.send(make_message("#ops"), SlackOptions())
    [sent] = slack.requests
    assert sent.url == OTHER_HOOK
    assert isinstance(sent.body, dict) and sent.body["channel"] == "#ops"


async def test_template_blocks_replace_the_default_layout(
    channel: SlackChannel, slack: SlackHost
) -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Agent finished"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Task*\ntask-42"}]},
        {"type": "divider"},
    ]
    slack.add(HOOK, body="ok")
    await channel.send(make_message(HOOK, data={"blocks": blocks}), SlackOptions())
    [sent] = slack.requests
    assert sent.body == {"text": FALLBACK, "blocks": blocks}


async def test_malformed_blocks_are_permanent(channel: SlackChannel, slack: SlackHost) -> None:
    with pytest.raises(PermanentDeliveryError, match="Block Kit"):
        await channel.send(make_message(HOOK, data={"blocks": [{"text": "no type"}]}),
                           SlackOptions())
    assert slack.requests == []


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, "internal_error", TransientDeliveryError),
        (503, "", TransientDeliveryError),
        (429, "rate_limited", TransientDeliveryError),
        (404, "no_service", PermanentDeliveryError),
        (403, "invalid_token", PermanentDeliveryError),
        (400, "invalid_payload", PermanentDeliveryError),
    ],
)
async def test_webhook_status_mapping(
    channel: SlackChannel, slack: SlackHost, status: int, body: str, error: type[Exception],
) -> None:
    slack.add(HOOK, body=body, status=status)
    with pytest.raises(error) as info:
        await channel.send(make_message(HOOK), SlackOptions())
    assert getattr(info.value, "status", None) == status
    assert f"HTTP {status}" in str(info.value)
    assert body in str(info.value)
    assert "SECRET" not in str(info.value)
    assert "hooks.slack.com/services/***" in str(info.value)
    assert len(slack.requests) == 1  # the SDK does not retry: the gateway's policy decides


@pytest.mark.parametrize("url", [HOOK, POST_MESSAGE])
async def test_rate_limit_passes_retry_after_on(
    channel: SlackChannel, slack: SlackHost, url: str
) -> None:
    slack.add(url, status=429, json_body={"ok": False, "error": "ratelimited"},
              headers={"Retry-After": "17"})
    target = HOOK if url == HOOK else "#agents"
    with pytest.raises(TransientDeliveryError) as info:
        await channel.send(make_message(target), SlackOptions(bot_token=BOT))
    assert (info.value.status, info.value.retry_after) == (429, 17.0)
    assert len(slack.requests) == 1


@pytest.mark.parametrize(
    ("status", "error"), [(503, TransientDeliveryError), (401, PermanentDeliveryError)]
)
async def test_bot_api_http_status_mapping(
    channel: SlackChannel, slack: SlackHost, status: int, error: type[Exception]
) -> None:
    slack.add(POST_MESSAGE, status=status, body="upstream trouble")
    with pytest.raises(error) as info:
        await channel.send(make_message("#agents"), SlackOptions(bot_token=BOT))
    assert getattr(info.value, "status", None) == status
    assert "SECRET" not in str(info.value)


async def test_bot_api_error_is_permanent(channel: SlackChannel, slack: SlackHost) -> None:
    slack.add(POST_MESSAGE, json_body={"ok": False, "error": "channel_not_found"})
    with pytest.raises(PermanentDeliveryError, match="channel_not_found") as info:
        await channel.send(make_message("#nowhere"), SlackOptions(bot_token=BOT))
    assert "SECRET" not in str(info.value)


async def test_bot_api_outage_is_transient(channel: SlackChannel, slack: SlackHost) -> None:
    slack.add(POST_MESSAGE, json_body={"ok": False, "error": "service_unavailable"})
    with pytest.raises(TransientDeliveryError, match="service_unavailable"):
        await channel.send(make_message("#agents"), SlackOptions(bot_token=BOT))


async def test_connection_error_is_transient(channel: SlackChannel, slack: SlackHost) -> None:
    slack.add(HOOK, error=ConnectionResetError("connection reset"))
    with pytest.raises(TransientDeliveryError, match="could not connect") as info:
        await channel.send(make_message(HOOK), SlackOptions())
    assert "SECRET" not in str(info.value)


async def test_no_answer_times_out_before_the_attempt_timeout(
    channel: SlackChannel, slack: SlackHost
) -> None:
    slack.add(HOOK)
    slack.replies[HOOK].hold = hold = threading.Event()
    started = time.monotonic()
    try:
        with pytest.raises(TransientDeliveryError,
                           match=r"timed out after 0\.4s \(attempt timeout 0\.5s\)"):
            await channel.send(make_message(HOOK, time_limit=0.5), SlackOptions())
        assert time.monotonic() - started < 3
    finally:
        hold.set()


async def test_channel_without_credentials_is_permanent(
    channel: SlackChannel, slack: SlackHost
) -> None:
    with pytest.raises(PermanentDeliveryError, match="SLACK_BOT_TOKEN"):
        await channel.send(make_message("#general"), SlackOptions())
    assert slack.requests == []


@pytest.mark.parametrize(
    ("target", "options", "says"),
    [
        (HOOK, {}, None),
        (HOOK + "/", {}, None),
        ("#general", {"bot_token": BOT}, None),
        ("@jane", {"bot_token": BOT}, None),
        ("C0123ABCD", {"bot_token": BOT}, None),
        ("#general", {"webhook_url": OTHER_HOOK}, None),
        ("#general", {}, "needs options.bot_token"),
        ("#has space", {"bot_token": BOT}, "neither"),
        ("#" + "x" * 40, {"bot_token": BOT}, "neither"),
        ("https://hooks.slack.com/services/T1/B2", {}, "neither"),
        ("http://hooks.slack.com/services/T1/B2/C3", {}, "neither"),
        ("https://example.com/services/T1/B2/C3", {}, "neither"),
        ("mailto://x@example.com", {}, "neither"),
    ],
)
def test_target_validation(target: str, options: dict[str, str], says: str | None) -> None:
    opts = SlackOptions.model_validate(options)
    if says is None:
        assert SlackChannel().validate_target(target, opts) == target.strip()
    else:
        with pytest.raises(ValueError, match=says) as info:
            SlackChannel().validate_target(target, opts)
        assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"bot_token": "not-a-token"}, "bot_token"),
     ({"webhook_url": "https://example.com/hook"}, "webhook_url")],
)
def test_bad_credentials_fail_naming_the_field(fields: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SlackOptions.model_validate(fields)
    assert [e["loc"] for e in info.value.errors()] == [(field,)]
    assert next(iter(fields.values())) not in str(info.value)


@pytest.mark.parametrize(
    ("target", "shown"),
    [(HOOK, "https://hooks.slack.com/services/***"), ("#general", "#general"),
     ("https://example.com/x", "https://…")],
)
def test_redact_target_hides_webhook_tokens(target: str, shown: str) -> None:
    assert SlackChannel().redact_target(target) == shown


def test_default_blocks_respect_slack_limits() -> None:
    blocks = default_blocks("s" * 200, "x" * 7000)
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section"]
    assert len(blocks[0]["text"]["text"]) == 150
    assert "".join(b["text"]["text"] for b in blocks[1:]) == "x" * 7000


async def test_the_webhook_secret_never_reaches_a_log_line(
    channel: SlackChannel, slack: SlackHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDK would log the webhook URL at debug level
    slack.add(HOOK, status=500, body="oops")
    with pytest.raises(TransientDeliveryError):
        await channel.send(make_message(HOOK), SlackOptions())
    assert slack.requests and "SECRET" not in caplog.text
