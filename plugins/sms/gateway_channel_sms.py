"""The ``sms`` channel: text messages through Apprise, Twilio by default.

The target is a phone number in E.164 form (``+15551234567``; spaces, dashes, dots and
brackets are dropped). Twilio needs ``account_sid``, ``auth_token`` and ``from_number``
(defaults: ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``TWILIO_FROM``). Any other Apprise
SMS provider is used by giving ``options.url``, an Apprise URL with ``{to}`` where the number
goes (e.g. ``vonage://KEY:SECRET@15550001111/{to}``); it then wins over the Twilio options.

One SMS is 160 characters: the renderer shortens the text, and the channel shortens it again
if it is still too long, at a word boundary with an ellipsis (``...`` for plain ASCII text, so
the message stays in the GSM-7 alphabet, else ``…``). The subject is not sent.

Failures: HTTP 408, 425, 429 and 5xx (and Twilio's 20429/20500/20503) are transient, other
4xx and Twilio error codes (an invalid number, an unverified sender) permanent, connection
failures and time-outs transient.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import quote

from apprise import NotifyFormat
from gateway_channel_apprise import AppriseRunner, parse_apprise_url, secrets_of
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.channels import (
    Channel,
    Message,
    PermanentDeliveryError,
    SendReceipt,
    mask_phone,
    shorten,
)

__all__ = ["SmsChannel", "SmsOptions", "normalize_number", "sms_text", "sms_url"]

SMS_LENGTH = 160
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SEPARATORS = re.compile(r"[\s().-]")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SAMPLE_NUMBER = "+15005550006"


class _TwilioEnv(BaseSettings):
    """The channel's environment (``TWILIO_*``); the options model validates the values."""

    model_config = SettingsConfigDict(
        env_prefix="TWILIO_", env_ignore_empty=True, str_strip_whitespace=True, extra="ignore"
    )

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_: str | None = Field(None, validation_alias="TWILIO_FROM")


def _env(name: str) -> Any:
    """``TWILIO_<NAME>`` or None; ``Any``: the options model validates it."""
    return getattr(_TwilioEnv(), name) or None


def normalize_number(number: str) -> str:
    """``number`` in E.164 form, or ``ValueError`` saying what is wrong."""
    compact = _SEPARATORS.sub("", number.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _E164.match(compact):
        raise ValueError(
            f"{mask_phone(number)!r} is not a phone number in E.164 form "
            "(+ country code and number, e.g. +15551234567)"
        )
    return compact


class SmsOptions(BaseModel):
    """Provider and credentials of the ``sms`` channel."""

    model_config = ConfigDict(extra="forbid", validate_default=True, hide_input_in_errors=True)

    account_sid: str | None = Field(default_factory=lambda: _env("account_sid"))
    auth_token: SecretStr | None = Field(default_factory=lambda: _env("auth_token"))
    from_number: str | None = Field(default_factory=lambda: _env("from_"))
    url: SecretStr | None = Field(
        None, description="Apprise URL of another SMS provider, with {to} for the number"
    )

    @field_validator("account_sid")
    @classmethod
    def _sid_shape(cls, v: str | None) -> str | None:
        if v is not None and not _ACCOUNT_SID.match(v):
            raise ValueError("a Twilio account SID is AC followed by 32 hex digits")
        return v

    @field_validator("from_number")
    @classmethod
    def _from_is_e164(cls, v: str | None) -> str | None:
        return normalize_number(v) if v is not None else None

    @field_validator("url")
    @classmethod
    def _url_is_apprise(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return None
        template = v.get_secret_value()
        if "{to}" not in template:
            raise ValueError("the SMS provider URL needs {to} where the phone number goes")
        parse_apprise_url(template.replace("{to}", _SAMPLE_NUMBER), what="SMS provider URL")
        return v


def sms_url(options: SmsOptions, number: str) -> str:
    """The Apprise URL that texts ``number``; ``ValueError`` if the provider is not set up."""
    if options.url is not None:
        return options.url.get_secret_value().replace("{to}", quote(number, safe="+"))
    missing = [name for name, value in (("account_sid", options.account_sid),
                                        ("auth_token", options.auth_token),
                                        ("from_number", options.from_number)) if not value]
    if missing:
        raise ValueError(
            f"SMS through Twilio needs options {', '.join(missing)} (TWILIO_ACCOUNT_SID, "
            "TWILIO_AUTH_TOKEN, TWILIO_FROM), or options.url for another Apprise SMS provider"
        )
    assert options.auth_token is not None and options.from_number is not None
    token = quote(options.auth_token.get_secret_value(), safe="")
    return (f"twilio://{options.account_sid}:{token}@{quote(options.from_number, safe='+')}"
            f"/{quote(number, safe='+')}")


def sms_text(text: str, limit: int = SMS_LENGTH) -> str:
    """``text`` fitted into one SMS: cut at a word boundary, with an ellipsis."""
    ellipsis = "..." if text.isascii() else "…"
    return shorten(" ".join(text.split()) if len(text) > limit else text, limit,
                   ellipsis=ellipsis)


class SmsChannel(Channel[SmsOptions]):
    """Text messages to phone numbers (``sms:+15551234567``)."""

    name: ClassVar[str] = "sms"
    Options: ClassVar[type[BaseModel]] = SmsOptions
    max_text_length: ClassVar[int | None] = SMS_LENGTH
    template_kind: ClassVar[str] = "sms"

    def __init__(self) -> None:
        self._runner = AppriseRunner()

    def validate_target(self, target: str, options: SmsOptions) -> str:
        number = normalize_number(target)
        parse_apprise_url(sms_url(options, number), what="SMS provider")
        return number

    def redact_target(self, target: str) -> str:
        return mask_phone(target)

    def reveal_target(self, target: str) -> str:
        return target.strip()

    async def send(self, message: Message, options: SmsOptions) -> SendReceipt:
        try:
            number = normalize_number(message.target)
            url = sms_url(options, number)
        except ValueError as exc:
            raise PermanentDeliveryError(f"sms: {exc}") from None
        token = options.auth_token.get_secret_value() if options.auth_token else None
        return await self._runner.notify(
            url, title="", body=sms_text(message.text), body_format=NotifyFormat.TEXT,
            time_limit=message.send_timeout, what=f"sms to {self.redact_target(number)}",
            # Apprise's warnings name the number in full: show it only as redacted
            secrets=(*secrets_of(url, token), number, number.lstrip("+")),
        )

    async def aopen(self) -> None:
        await self._runner.warm()

    async def aclose(self) -> None:
        self._runner.shutdown()
