"""Fake channel plugins for configuration tests: small, typed, independent of plugins/.

Their options mirror the real plugins' closely enough for the example configurations."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from gateway.channels import Channel, ChannelPlugin, Message, SendReceipt


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailOptions(_Options):
    host: str = "localhost"
    port: int = Field(25, ge=1, le=65535)
    tls: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    from_addr: str = "gateway@localhost"
    from_name: str | None = None


class SlackOptions(_Options):
    bot_token: SecretStr | None = None
    webhook_url: SecretStr | None = None
    username: str | None = None


class SmsOptions(_Options):
    account_sid: str = "AC-test"
    auth_token: SecretStr | None = None
    from_number: str = "+15550000000"


class WebhookOptions(_Options):
    secret: SecretStr | None = None
    allow_private_targets: bool = False


class _Fake(Channel[BaseModel]):
    async def send(self, message: Message, options: BaseModel) -> SendReceipt:
        raise NotImplementedError("configuration tests never send")


class FakeEmail(_Fake):
    name: ClassVar[str] = "email"
    Options: ClassVar[type[BaseModel]] = EmailOptions
    template_kind: ClassVar[str] = "email"

    def validate_target(self, target: str, options: BaseModel) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", target):
            raise ValueError(f"{target!r} is not one email address (like jane@example.com)")
        return target

    def redact_target(self, target: str) -> str:
        local, _, domain = target.partition("@")
        return f"{local[:1]}***@{domain}"


class FakeSlack(_Fake):
    name: ClassVar[str] = "slack"
    Options: ClassVar[type[BaseModel]] = SlackOptions
    template_kind: ClassVar[str] = "slack"

    def validate_target(self, target: str, options: BaseModel) -> str:
        if not target.startswith(("#", "@", "https://")):
            raise ValueError(f"{target!r} is not a #channel, @user or webhook URL")
        return target


class FakeSms(_Fake):
    name: ClassVar[str] = "sms"
    Options: ClassVar[type[BaseModel]] = SmsOptions
    template_kind: ClassVar[str] = "sms"
    max_text_length: ClassVar[int | None] = 40

    def validate_target(self, target: str, options: BaseModel) -> str:
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", target):
            raise ValueError(f"{target!r} is not an E.164 phone number (like +15550100)")
        return target

    def redact_target(self, target: str) -> str:
        return target[:3] + "***" + target[-2:]


class FakeWebhook(_Fake):
    name: ClassVar[str] = "webhook"
    Options: ClassVar[type[BaseModel]] = WebhookOptions
    template_kind: ClassVar[str] = "webhook"

    def validate_target(self, target: str, options: BaseModel) -> str:
        if not target.startswith(("https://", "http://")):
            raise ValueError(f"{target!r} is not an http(s) URL")
        return target

    def redact_target(self, target: str) -> str:
        return target.split("?")[0]


class FakeText(_Fake):
    name: ClassVar[str] = "text"


FAKES: tuple[type[_Fake], ...] = (FakeEmail, FakeSlack, FakeSms, FakeWebhook, FakeText)


def fake_plugins() -> dict[str, ChannelPlugin]:
    return {cls.name: ChannelPlugin(cls.name, cls, "fake-plugins", "0") for cls in FAKES}
