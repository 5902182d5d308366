"""The slack channel: the exact request Slack would receive, intercepted with ``responses``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
import requests
import responses
from gateway_channel_slack import SlackChannel, SlackOptions, default_blocks
from pydantic import ValidationError

from gateway.core import PermanentDeliveryError, TransientDeliveryError
from tests.channels.conftest import make_message

HOOK = "https://hooks.slack.com/services/T00000001/B00000002/abcdefSECRET0123456789"
OTHER_HOOK = "https://hooks.slack.com/services/T00000003/B00000004/zyxwvuSECRET9876543210"
BOT = "xoxb-1234-5678-SECRETtoken"
POST_MESSAGE = "https://slack.com/api/chat.postMessage"
HEADER = {"type": "header", "text": {"type": "plain_text", "text": "Task task-42 finished"}}


@pytest.fixture(autouse=True)
def _no_slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)


@pytest.fixture
def slack() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
async def channel() -> AsyncIterator[SlackChannel]:
    ch = SlackChannel()
    yield ch
    await ch.aclose()


def sent(mock: responses.RequestsMock) -> list[tuple[str, dict[str, str], object]]:
    out = []
    for call in mock.calls:
        body = call.request.body
        assert isinstance(body, (str, bytes))
        headers = {k: v if isinstance(v, str) else v.decode()
                   for k, v in call.request.headers.items()}
        out.append((str(call.request.url), headers, json.loads(body)))
    return out


async def test_incoming_webhook_payload(
    channel: SlackChannel, slack: responses.RequestsMock
) -> None:
    slack.add(responses.POST, HOOK, body="ok")
    mrkdwn = "Report is *ready*: <https://example.com|open> &amp; enjoy"
    message = make_message(HOOK, text=mrkdwn)
    receipt = await channel.send(message, SlackOptions())

    assert receipt.detail == "accepted by Slack"
    [(url, headers, body)] = sent(slack)
    assert url == HOOK
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Authorization" not in headers
    assert body == {"attachments": [{"blocks": [
        HEADER, {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}},
    ]}]}


async def test_bot_token_posts_to_the_channel(
    channel: SlackChannel, slack: responses.RequestsMock
) -> None:
    slack.add(responses.POST, POST_MESSAGE, json={"ok": True, "channel": "C1", "ts": "1.2"})
    await channel.send(make_message("#agents"), SlackOptions(bot_token=BOT, username="Agent"))

    [(url, headers, body)] = sent(slack)
    assert url == POST_MESSAGE
    assert headers["Authorization"] == f"Bearer {BOT}"
    assert body == {
        "attachments": [{"blocks": [
            HEADER, {"type": "section",
                     "text": {"type": "mrkdwn", "text": "The agent says: all done."}},
        ]}],
        "username": "Agent",
        "channel": "#agents",
    }


async def test_bot_token_from_environment(
    channel: SlackChannel, slack: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT)
    slack.add(responses.POST, POST_MESSAGE, json={"ok": True})
    await channel.send(make_message("C0123ABCD"), SlackOptions())
    [(_, headers, body)] = sent(slack)
    assert headers["Authorization"] == f"Bearer {BOT}"
    assert isinstance(body, dict) and body["channel"] == "#C0123ABCD"


async def test_channel_through_the_configured_webhook(
    channel: SlackChannel, slack: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", OTHER_HOOK)
    slack.add(responses.POST, OTHER_HOOK, body="ok")
    await channel.send(make_message("#ops"), SlackOptions())
    [(url, _, body)] = sent(slack)
    assert url == OTHER_HOOK
    assert isinstance(body, dict) and body["channel"] == "#ops"


async def test_template_blocks_replace_the_default_layout(
    channel: SlackChannel, slack: responses.RequestsMock
) -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Agent finished"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Task*\ntask-42"}]},
        {"type": "divider"},
    ]
    slack.add(responses.POST, HOOK, body="ok")
    await channel.send(make_message(HOOK, data={"blocks": blocks}), SlackOptions())
    [(_, _, body)] = sent(slack)
    assert body == {"attachments": [{"blocks": blocks}]}


async def test_malformed_blocks_are_permanent(channel: SlackChannel) -> None:
    with pytest.raises(PermanentDeliveryError, match="Block Kit"):
        await channel.send(make_message(HOOK, data={"blocks": [{"text": "no type"}]}),
                           SlackOptions())


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
    channel: SlackChannel, slack: responses.RequestsMock, status: int, body: str,
    error: type[Exception],
) -> None:
    slack.add(responses.POST, HOOK, body=body, status=status)
    with pytest.raises(error) as info:
        await channel.send(make_message(HOOK), SlackOptions())
    assert getattr(info.value, "status", None) == status
    assert "SECRET" not in str(info.value)
    assert "hooks.slack.com/services/***" in str(info.value)


async def test_bot_api_error_is_permanent(
    channel: SlackChannel, slack: responses.RequestsMock
) -> None:
    slack.add(responses.POST, POST_MESSAGE, json={"ok": False, "error": "channel_not_found"})
    with pytest.raises(PermanentDeliveryError) as info:
        await channel.send(make_message("#nowhere"), SlackOptions(bot_token=BOT))
    assert "SECRET" not in str(info.value)


async def test_connection_error_is_transient(
    channel: SlackChannel, slack: responses.RequestsMock
) -> None:
    slack.add(responses.POST, HOOK, body=requests.ConnectionError("connection reset"))
    with pytest.raises(TransientDeliveryError, match="could not connect"):
        await channel.send(make_message(HOOK), SlackOptions())


async def test_channel_without_credentials_is_permanent(channel: SlackChannel) -> None:
    with pytest.raises(PermanentDeliveryError, match="SLACK_BOT_TOKEN"):
        await channel.send(make_message("#general"), SlackOptions())


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
