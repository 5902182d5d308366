"""The ``email`` channel: SMTP through Apprise (``mailto://`` / ``mailtos://``).

Every message goes out as ``multipart/alternative``: the HTML body (the message's HTML, or its
text with line breaks kept) and a plain-text part that Apprise derives from that HTML.

With no configuration at all it hands mail to an SMTP server at ``localhost:25`` without TLS.
The environment gives the defaults (read when the options are built, not at import):
``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_TLS`` (``none``, ``starttls``, ``ssl``), ``SMTP_USERNAME``,
``SMTP_PASSWORD``, ``SMTP_FROM`` (``addr`` or ``Name <addr>``).

Apprise reports an SMTP refusal of the only recipient without its code, so a refused address
is retried as a transient failure until the retry policy gives up; connection failures and
time-outs are transient; a ``5xx`` refusal Apprise does report is permanent.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

from apprise import NotifyFormat
from apprise.conversion import convert_between
from apprise.utils.parse import is_email
from gateway_channel_apprise import AppriseRunner
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.channels import Channel, Message, PermanentDeliveryError, SendReceipt, mask_email

__all__ = ["EmailChannel", "EmailOptions", "mailto_url"]

TlsMode = Literal["none", "starttls", "ssl"]
_DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "ssl": 465}
_APPRISE_MODES: dict[str, str] = {"none": "insecure", "starttls": "starttls", "ssl": "ssl"}
_DEFAULT_FROM = "notification-gateway@localhost"


class _SmtpEnv(BaseSettings):
    """The channel's environment (``SMTP_*``); the options model validates the values."""

    model_config = SettingsConfigDict(
        env_prefix="SMTP_", env_ignore_empty=True, str_strip_whitespace=True, extra="ignore"
    )

    host: str | None = None
    port: str | None = None
    tls: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    from_: str | None = Field(None, validation_alias="SMTP_FROM")


def _env(name: str) -> Any:
    """``SMTP_<NAME>`` or None; ``Any``: the options model validates it (port, tls)."""
    value = getattr(_SmtpEnv(), name)
    return value or None


def _email(value: str) -> dict[str, str] | None:
    found = is_email(value)  # type: ignore[no-untyped-call] # apprise: untyped
    return found if isinstance(found, dict) else None


def _env_from() -> str:
    return parseaddr(_env("from_") or "")[1] or _DEFAULT_FROM


def _env_from_name() -> str | None:
    return parseaddr(_env("from_") or "")[0] or "Notification Gateway"


class EmailOptions(BaseModel):
    """SMTP server, credentials and sender of the ``email`` channel."""

    model_config = ConfigDict(extra="forbid", validate_default=True, hide_input_in_errors=True)

    host: str = Field(default_factory=lambda: _env("host") or "localhost", min_length=1)
    port: int | None = Field(
        default_factory=lambda: _env("port"), ge=1, le=65535,
        description="default: 25 without TLS, 587 with STARTTLS, 465 with SSL",
    )
    tls: TlsMode = Field(default_factory=lambda: _env("tls") or "none")
    username: str | None = Field(default_factory=lambda: _env("username"))
    password: SecretStr | None = Field(default_factory=lambda: _env("password"))
    from_addr: str = Field(default_factory=_env_from)
    from_name: str | None = Field(default_factory=_env_from_name)
    verify_certificate: bool = True

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_any_case(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("from_addr")
    @classmethod
    def _from_is_email(cls, v: str) -> str:
        found = _email(v)
        if not found or found["name"]:
            raise ValueError(f"{v!r} is not an email address (give the name as from_name)")
        return str(found["full_email"])

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.tls]


def mailto_url(options: EmailOptions, recipient: str) -> str:
    """The Apprise URL that sends to ``recipient`` through the configured SMTP server."""
    scheme = "mailto" if options.tls == "none" else "mailtos"
    auth = ""
    if options.username:
        auth = quote(options.username, safe="")
        if options.password is not None:
            auth += ":" + quote(options.password.get_secret_value(), safe="")
        auth += "@"
    host = f"[{options.host}]" if ":" in options.host else options.host
    query = {
        "smtp": options.host,  # explicit: no provider template guessed from the host name
        "mode": _APPRISE_MODES[options.tls],
        "from": options.from_addr,
        "to": recipient,
        "verify": "yes" if options.verify_certificate else "no",
        "format": "html",
    }
    if options.from_name:
        query["name"] = options.from_name
    query_string = urlencode(query, quote_via=quote)  # quote: Apprise reads "+" literally
    return f"{scheme}://{auth}{host}:{options.effective_port}?{query_string}"


def _html_of(message: Message) -> str:
    if message.html:
        return message.html
    html = convert_between(  # type: ignore[no-untyped-call] # apprise: untyped
        NotifyFormat.TEXT, NotifyFormat.HTML, message.text
    )
    return str(html)


class EmailChannel(Channel[EmailOptions]):
    """Email over SMTP; the target is one address (``jane@example.com``)."""

    name: ClassVar[str] = "email"
    Options: ClassVar[type[BaseModel]] = EmailOptions
    template_kind: ClassVar[str] = "email"

    def __init__(self) -> None:
        self._runner = AppriseRunner()

    def validate_target(self, target: str, options: EmailOptions) -> str:
        address = target.strip()
        found = _email(address)
        if not found or found["name"] or found["full_email"] != address:
            raise ValueError(f"{target!r} is not one email address (like jane@example.com)")
        return address

    def redact_target(self, target: str) -> str:
        return mask_email(target)

    def reveal_target(self, target: str) -> str:
        return target.strip()

    async def send(self, message: Message, options: EmailOptions) -> SendReceipt:
        try:
            recipient = self.validate_target(message.target, options)
        except ValueError as exc:
            raise PermanentDeliveryError(f"email: {exc}") from None
        password = options.password.get_secret_value() if options.password else None
        url = mailto_url(options, recipient)
        return await self._runner.notify(
            url, title=message.subject, body=_html_of(message), body_format=NotifyFormat.HTML,
            time_limit=message.send_timeout, what=f"email to {self.redact_target(recipient)}",
            # Apprise's warnings name the recipient in full: show it only as redacted
            secrets=tuple(s for s in (password, quote(password or "", safe=""), recipient) if s),
        )

    async def aopen(self) -> None:
        await self._runner.warm()

    async def aclose(self) -> None:
        self._runner.shutdown()
