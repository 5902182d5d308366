"""The ``slack`` channel: Slack through Apprise, by incoming webhook or bot token.

A target is either an incoming-webhook URL (``https://hooks.slack.com/services/T…/B…/…``,
which posts to the webhook's own channel) or a channel (``#general``, a channel id
``C0123ABCD``, ``@user``), which needs ``options.bot_token`` (default ``SLACK_BOT_TOKEN``) to
post with ``chat.postMessage``, or else ``options.webhook_url`` (default ``SLACK_WEBHOOK_URL``).

The message goes out as Block Kit, through an Apprise Block Kit template: the blocks rendered
by the template layer (``message.data["blocks"]``), else a header with the subject and a
``mrkdwn`` section with the text, which is sent as it is (it is Slack mrkdwn already).
Apprise's footer, icon and timestamp are turned off.

Failures: HTTP 408, 425, 429 and 5xx are transient, other 4xx (a revoked webhook, an unknown
channel) permanent, connection failures and time-outs transient.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from apprise import NotifyFormat
from gateway_channel_apprise import AppriseRunner, parse_apprise_url
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.channels import Channel, Message, PermanentDeliveryError, SendReceipt, shorten

__all__ = ["SlackChannel", "SlackOptions", "default_blocks", "slack_url"]

_WEBHOOK = re.compile(
    r"^https://hooks\.slack\.com/services/(?P<a>[A-Z0-9]+)/(?P<b>[A-Z0-9]+)/(?P<c>[A-Za-z0-9]+)/?$",
    re.IGNORECASE,
)
_CHANNEL = re.compile(r"^[#@]?[A-Za-z0-9_-]{1,32}$")  # what Apprise accepts
_BOT_TOKEN = re.compile(r"^(?:xoxe\.)?xox[abp]-[A-Za-z0-9-]+$")
_QUIET = {"blocks": "yes", "footer": "no", "image": "no", "timestamp": "no"}
_HEADER_LIMIT = 150  # Slack's limits: header text, section text, blocks per message
_SECTION_LIMIT = 3000
_MAX_BLOCKS = 50


class _SlackEnv(BaseSettings):
    """The channel's environment (``SLACK_*``); the options model validates the values."""

    model_config = SettingsConfigDict(
        env_prefix="SLACK_", env_ignore_empty=True, str_strip_whitespace=True, extra="ignore"
    )

    bot_token: SecretStr | None = None
    webhook_url: SecretStr | None = None


class SlackOptions(BaseModel):
    """Credentials and presentation of the ``slack`` channel."""

    model_config = ConfigDict(extra="forbid", validate_default=True, hide_input_in_errors=True)

    bot_token: SecretStr | None = Field(
        default_factory=lambda: _SlackEnv().bot_token,
        description="xoxb-… token; posts to channel targets with chat.postMessage",
    )
    webhook_url: SecretStr | None = Field(
        default_factory=lambda: _SlackEnv().webhook_url,
        description="incoming webhook used for channel targets when there is no bot token",
    )
    username: str | None = Field(None, max_length=80, description="bot name shown in Slack")
    timeout: float = Field(
        20.0, gt=0, le=300,
        description="seconds one delivery may take; below the attempt timeout (30 s by default)",
    )

    @field_validator("bot_token")
    @classmethod
    def _bot_token_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not _BOT_TOKEN.match(v.get_secret_value()):
            raise ValueError("a Slack bot token looks like xoxb-… (or xoxp-…, xoxa-…)")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _webhook_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not _WEBHOOK.match(v.get_secret_value()):
            raise ValueError(
                "a Slack incoming webhook looks like https://hooks.slack.com/services/T…/B…/…"
            )
        return v


def _webhook_tokens(url: str) -> tuple[str, str, str] | None:
    found = _WEBHOOK.match(url.strip())
    return (found["a"], found["b"], found["c"]) if found else None


def slack_url(target: str, options: SlackOptions, *, template: str | None = None) -> str:
    """The Apprise URL posting to ``target``; ``ValueError`` if it cannot be reached."""
    query = dict(_QUIET)
    if template is not None:
        query["template"] = template
    botname = f"{quote(options.username, safe='')}@" if options.username else ""
    tokens = _webhook_tokens(target)
    if tokens is not None:
        path = "/".join(tokens)
    elif _CHANNEL.match(target):
        channel = quote(target, safe="")
        if options.bot_token is not None:
            path = f"{options.bot_token.get_secret_value()}/{channel}"
        elif options.webhook_url is not None:
            hook = _webhook_tokens(options.webhook_url.get_secret_value())
            assert hook is not None  # checked by the options model
            path = "/".join((*hook, channel))
        else:
            raise ValueError(
                f"channel {target!r} needs options.bot_token (SLACK_BOT_TOKEN) or "
                "options.webhook_url (SLACK_WEBHOOK_URL); or subscribe an incoming-webhook URL"
            )
    else:
        raise ValueError(
            f"{_redact(target)!r} is neither a Slack incoming-webhook URL "
            "(https://hooks.slack.com/services/T…/B…/…) nor a channel (#name, C0123ABCD, @user)"
        )
    return f"slack://{botname}{path}/?{urlencode(query, quote_via=quote)}"


def _redact(target: str) -> str:
    if target.strip().lower().startswith(("http://", "https://")):
        head, sep, _ = target.strip().partition("/services/")
        return f"{head}/services/***" if sep else "https://…"
    return target


def default_blocks(subject: str, text: str) -> list[dict[str, Any]]:
    """A header with the subject and ``mrkdwn`` sections with the text (Slack's limits)."""
    blocks: list[dict[str, Any]] = []
    if subject.strip():
        blocks.append({"type": "header", "text": {
            "type": "plain_text", "text": shorten(" ".join(subject.split()), _HEADER_LIMIT)}})
    for start in range(0, max(len(text), 1), _SECTION_LIMIT):
        chunk = text[start:start + _SECTION_LIMIT] or " "
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    return blocks[:_MAX_BLOCKS]


@contextmanager
def _blocks_template(message: Message) -> Iterator[str]:
    """A Block Kit template file: the blocks in ``message.data``, else :func:`default_blocks`."""
    blocks = message.data.get("blocks") or default_blocks(message.subject, message.text)
    if not (isinstance(blocks, list)
            and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)):
        raise PermanentDeliveryError(
            "slack: message.data.blocks must be a list of Block Kit blocks, each with a 'type'"
        )
    with tempfile.TemporaryDirectory(prefix="gateway-slack-") as tmp:
        path = Path(tmp) / "blocks.json"
        path.write_text(json.dumps({"blocks": blocks}), encoding="utf-8")
        yield str(path)


class SlackChannel(Channel[SlackOptions]):
    """Slack messages (``slack:#general`` or ``slack:https://hooks.slack.com/services/…``)."""

    name: ClassVar[str] = "slack"
    Options: ClassVar[type[BaseModel]] = SlackOptions
    template_kind: ClassVar[str] = "slack"
    subscriber_options: ClassVar[frozenset[str]] = frozenset({"username"})

    def __init__(self) -> None:
        self._runner = AppriseRunner()

    def validate_target(self, target: str, options: SlackOptions) -> str:
        target = target.strip()
        parse_apprise_url(slack_url(target, options), what="Slack target")
        return target

    def redact_target(self, target: str) -> str:
        return _redact(target)

    async def send(self, message: Message, options: SlackOptions) -> SendReceipt:
        what = f"slack to {self.redact_target(message.target)}"
        secrets = [s.get_secret_value() for s in (options.bot_token, options.webhook_url) if s]
        secrets.extend(t for t in _webhook_tokens(message.target) or ())
        if options.webhook_url is not None:
            secrets.extend(_webhook_tokens(options.webhook_url.get_secret_value()) or ())
        with _blocks_template(message) as template:
            try:
                url = slack_url(message.target.strip(), options, template=template)
            except ValueError as exc:
                raise PermanentDeliveryError(f"slack: {exc}") from None
            return await self._runner.notify(
                url, title=message.subject, body=message.text, body_format=NotifyFormat.TEXT,
                time_limit=options.timeout, what=what, secrets=secrets,
            )

    async def aclose(self) -> None:
        self._runner.shutdown()
