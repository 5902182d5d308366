"""The ``slack`` channel: Slack through ``slack-sdk``, by incoming webhook or bot token.

A target is either an incoming-webhook URL (``https://hooks.slack.com/services/T…/B…/…``,
which posts to the webhook's own channel) or a channel (``#general``, a channel id
``C0123ABCD``, ``@user``), which needs ``options.bot_token`` (default ``SLACK_BOT_TOKEN``) to
post with ``chat.postMessage``, or else ``options.webhook_url`` (default ``SLACK_WEBHOOK_URL``).

The message goes out as Block Kit: the blocks rendered by the template layer
(``message.data["blocks"]``), else a header with the subject and ``mrkdwn`` sections with the
text, which is sent as it is (it is Slack mrkdwn already); the top-level ``text`` is the
notification's fallback (the subject, else the text).

Slack's own client library sends the request (Apprise reports neither the HTTP status nor
``Retry-After``), in a bounded pool of worker threads that carry the delivery's egress policy,
with the library's own retries off: the gateway's retry policy decides. Failures: HTTP 408,
425, 429 and 5xx are transient (``Retry-After`` honoured), other 4xx (a revoked webhook, an
unknown channel) permanent, as are the Web API's ``ok: false`` errors except Slack's own
outages; connection failures and time-outs are transient.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import http.client
import logging
import math
import re
import ssl
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from gateway.channels import (
    Channel,
    Message,
    PermanentDeliveryError,
    SendReceipt,
    TransientDeliveryError,
    http_failure,
    redactor,
    shorten,
)

__all__ = ["SlackChannel", "SlackOptions", "default_blocks", "slack_request"]

_WEBHOOK = re.compile(
    r"^https://hooks\.slack\.com/services/(?P<a>[A-Z0-9]+)/(?P<b>[A-Z0-9]+)/(?P<c>[A-Za-z0-9]+)/?$",
    re.IGNORECASE,
)
_CHANNEL = re.compile(r"^[#@]?[A-Za-z0-9_-]{1,32}$")
_BOT_TOKEN = re.compile(r"^(?:xoxe\.)?xox[abp]-[A-Za-z0-9-]+$")
_HEADER_LIMIT = 150  # Slack's limits: header text, section text, blocks per message
_SECTION_LIMIT = 3000
_MAX_BLOCKS = 50
_FALLBACK_LIMIT = 3000
#: Web API errors (answered with HTTP 200) that are Slack's outage, not the message's fault
_TRANSIENT_API_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
#: most threads one plugin instance sends on at once
MAX_IN_FLIGHT = 64


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


@dataclass(frozen=True)
class SlackRequest:
    """Where a message to a target goes: an incoming webhook, or ``chat.postMessage`` with a
    bot token; ``channel`` is the channel asked for (None: the webhook's own)."""

    webhook_url: str | None
    bot_token: str | None
    channel: str | None

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be shown: the token, the webhook URL and its path parts."""
        parts: list[str] = [s for s in (self.bot_token, self.webhook_url) if s]
        found = _WEBHOOK.match(self.webhook_url or "")
        if found:
            parts.extend(found.group("a", "b", "c"))
        return tuple(sorted(parts, key=len, reverse=True))


def slack_request(target: str, options: SlackOptions) -> SlackRequest:
    """Where a message to ``target`` goes; ``ValueError`` if it cannot be reached."""
    if _WEBHOOK.match(target):
        return SlackRequest(webhook_url=target.rstrip("/"), bot_token=None, channel=None)
    if not _CHANNEL.match(target):
        raise ValueError(
            f"{_redact(target)!r} is neither a Slack incoming-webhook URL "
            "(https://hooks.slack.com/services/T…/B…/…) nor a channel (#name, C0123ABCD, @user)"
        )
    if options.bot_token is not None:
        return SlackRequest(None, options.bot_token.get_secret_value(), target)
    if options.webhook_url is not None:
        return SlackRequest(options.webhook_url.get_secret_value().rstrip("/"), None, target)
    raise ValueError(
        f"channel {target!r} needs options.bot_token (SLACK_BOT_TOKEN) or "
        "options.webhook_url (SLACK_WEBHOOK_URL); or subscribe an incoming-webhook URL"
    )


def _redact(target: str) -> str:
    if target.strip().lower().startswith(("http://", "https://")):
        head, sep, _ = target.strip().partition("/services/")
        return f"{head}/services/***" if sep else "https://…"
    return target


def _scrub(text: str, secrets: Sequence[str]) -> str:
    return redactor(secrets)(text)


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


def _payload(message: Message, options: SlackOptions) -> dict[str, Any]:
    """The message as Slack gets it: Block Kit blocks, a fallback text, the bot's name."""
    blocks = message.data.get("blocks") or default_blocks(message.subject, message.text)
    if not (isinstance(blocks, list)
            and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)):
        raise PermanentDeliveryError(
            "slack: message.data.blocks must be a list of Block Kit blocks, each with a 'type'"
        )
    fallback = " ".join((message.subject or message.text).split()) or "(no text)"
    payload: dict[str, Any] = {"text": shorten(fallback, _FALLBACK_LIMIT), "blocks": blocks}
    if options.username:
        payload["username"] = options.username
    return payload


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def _post(request: SlackRequest, payload: dict[str, Any], *, timeout: int, what: str,
          tls: ssl.SSLContext, logger: logging.Logger) -> SendReceipt:
    """Send one message (blocking; runs in a worker thread) and classify Slack's answer."""
    secrets = request.secrets
    if request.webhook_url is not None:
        body = dict(payload, channel=request.channel) if request.channel else payload
        hook = WebhookClient(request.webhook_url, timeout=timeout, ssl=tls, logger=logger,
                             retry_handlers=[])
        answer = hook.send_dict(body)
        if 200 <= answer.status_code < 300:
            return SendReceipt(provider_status=answer.status_code, detail="accepted by Slack")
        said = shorten(_scrub(answer.body or "", secrets), 200) or "no detail"
        raise http_failure(answer.status_code,
                           f"{what}: Slack answered HTTP {answer.status_code}: {said}",
                           retry_after=_header(answer.headers, "retry-after"))
    assert request.bot_token is not None and request.channel is not None
    client = WebClient(token=request.bot_token, timeout=timeout, ssl=tls, logger=logger,
                       retry_handlers=[])
    try:
        response = client.chat_postMessage(channel=request.channel, **payload)
    except SlackApiError as exc:
        status = int(exc.response.status_code)
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        said = shorten(_scrub(str(error or "no detail"), secrets), 200)
        if status != 200:
            raise http_failure(status, f"{what}: Slack answered HTTP {status}: {said}",
                               retry_after=_header(exc.response.headers, "retry-after")
                               ) from None
        if error in _TRANSIENT_API_ERRORS:
            raise TransientDeliveryError(f"{what}: Slack failed: {said} (transient)") from None
        raise PermanentDeliveryError(f"{what}: Slack refused the message: {said}") from None
    ts = response.get("ts")
    return SendReceipt(provider_status=response.status_code, detail="accepted by Slack",
                       provider_id=str(ts) if ts else None)


class SlackChannel(Channel[SlackOptions]):
    """Slack messages (``slack:#general`` or ``slack:https://hooks.slack.com/services/…``)."""

    name: ClassVar[str] = "slack"
    Options: ClassVar[type[BaseModel]] = SlackOptions
    template_kind: ClassVar[str] = "slack"
    subscriber_options: ClassVar[frozenset[str]] = frozenset({"username"})

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._tls: ssl.SSLContext | None = None
        # the SDK logs requests (with the token) at debug level, and each failure the channel
        # already reports as its delivery error: keep it quiet
        self._logger = logging.getLogger("gateway.channels.slack.sdk")
        self._logger.setLevel(logging.CRITICAL)

    def validate_target(self, target: str, options: SlackOptions) -> str:
        target = target.strip()
        slack_request(target, options)
        return target

    def redact_target(self, target: str) -> str:
        return _redact(target)

    async def send(self, message: Message, options: SlackOptions) -> SendReceipt:
        what = f"slack to {self.redact_target(message.target)}"
        payload = _payload(message, options)
        try:
            request = slack_request(message.target.strip(), options)
        except ValueError as exc:
            raise PermanentDeliveryError(f"slack: {exc}") from None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="slack")
        if self._tls is None:
            self._tls = ssl.create_default_context()
        # below the attempt timeout, so this error (not the core's cutoff) says what happened:
        # slack-sdk's socket timeout (whole seconds) and a deadline on the whole call
        limit = message.send_timeout
        post = functools.partial(_post, request, payload, timeout=max(1, math.floor(limit)),
                                 what=what, tls=self._tls, logger=self._logger)
        # the caller's context (its egress policy) goes with the call into the worker thread
        context = contextvars.copy_context()
        try:
            async with asyncio.timeout(limit):
                return await asyncio.get_running_loop().run_in_executor(
                    self._executor, context.run, post)
        except TimeoutError:
            raise TransientDeliveryError(
                f"{what}: timed out after {limit:g}s "
                f"(attempt timeout {message.time_limit:g}s)") from None
        except (OSError, http.client.HTTPException) as exc:
            said = _scrub(f"{type(exc).__name__}: {exc}", request.secrets)
            raise TransientDeliveryError(f"{what}: could not connect: {said}") from None

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
