"""The email channel against a real SMTP server (aiosmtpd) on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from gateway_channel_email import EmailChannel, EmailOptions, mailto_url
from pydantic import ValidationError

from gateway.core import PermanentDeliveryError, TransientDeliveryError
from gateway.local import free_port
from tests.channels.conftest import SmtpServer, make_message

SMTP_ENV = ("SMTP_HOST", "SMTP_PORT", "SMTP_TLS", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_FROM")


@pytest.fixture(autouse=True)
def _no_smtp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SMTP_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def channel() -> AsyncIterator[EmailChannel]:
    ch = EmailChannel()
    yield ch
    await ch.aclose()


def options_for(server: SmtpServer, **extra: object) -> EmailOptions:
    return EmailOptions.model_validate(
        {"host": server.host, "port": server.port, "from_addr": "gw@example.org", **extra}
    )


def parts(msg: object) -> dict[str, str]:
    from email.message import EmailMessage

    assert isinstance(msg, EmailMessage)
    found = {}
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            found[part.get_content_type()] = str(part.get_content())
    return found


async def test_sends_subject_plain_and_html_to_the_recipient(
    channel: EmailChannel, smtp_server: SmtpServer
) -> None:
    message = make_message(
        "jane@example.com",
        subject="Report ready: Q3 numbers",
        text="Revenue grew 12%.\nDetails inside.",
        html="<p>Revenue grew <b>12%</b>.</p><p>Details inside.</p>",
    )
    receipt = await channel.send(message, options_for(smtp_server))

    assert receipt.detail == "accepted by E-Mail"
    [(envelope, mail)] = smtp_server.mailbox.messages
    assert envelope.rcpt_tos == ["jane@example.com"]
    assert envelope.mail_from == "gw@example.org"
    assert mail["To"] == "jane@example.com"
    assert mail["Subject"] == "Report ready: Q3 numbers"
    assert mail["From"] == "Notification Gateway <gw@example.org>"
    assert mail.get_content_type() == "multipart/alternative"
    bodies = parts(mail)
    assert bodies["text/html"].strip() == "<p>Revenue grew <b>12%</b>.</p><p>Details inside.</p>"
    assert bodies["text/plain"].split() == ["Revenue", "grew", "12%.", "Details", "inside."]


async def test_text_only_message_still_goes_out_as_plain_and_html(
    channel: EmailChannel, smtp_server: SmtpServer
) -> None:
    message = make_message("bob@example.com", text="Line one <ok> & done\nLine two")
    await channel.send(message, options_for(smtp_server, from_name="Agents"))

    [(_, mail)] = smtp_server.mailbox.messages
    assert mail["From"] == "Agents <gw@example.org>"
    bodies = parts(mail)
    assert bodies["text/plain"].strip().splitlines() == ["Line one <ok> & done", "Line two"]
    assert "Line&nbsp;one&nbsp;&lt;ok&gt;&nbsp;&amp;&nbsp;done<br/>Line&nbsp;two" in bodies[
        "text/html"
    ]


async def test_defaults_come_from_the_environment(
    channel: EmailChannel, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("SMTP_FROM", "Build Bot <bot@example.net>")
    options = EmailOptions()
    assert (options.host, options.port, options.tls) == (smtp_server.host, smtp_server.port, "none")

    await channel.send(make_message("ops@example.com"), options)

    [(envelope, mail)] = smtp_server.mailbox.messages
    assert envelope.mail_from == "bot@example.net"
    assert mail["From"] == "Build Bot <bot@example.net>"


def test_unconfigured_options_target_localhost_25_without_tls() -> None:
    options = EmailOptions()
    assert (options.host, options.effective_port, options.tls) == ("localhost", 25, "none")
    assert options.username is None and options.password is None
    url = urlsplit(mailto_url(options, "a@example.com"))
    assert (url.scheme, url.hostname, url.port) == ("mailto", "localhost", 25)
    assert parse_qs(url.query)["mode"] == ["insecure"]


@pytest.mark.parametrize(
    ("fields", "scheme", "port", "mode"),
    [
        ({"tls": "starttls"}, "mailtos", 587, "starttls"),
        ({"tls": "ssl"}, "mailtos", 465, "ssl"),
        ({"tls": "ssl", "port": 2465}, "mailtos", 2465, "ssl"),
        ({"tls": "none", "port": 2525}, "mailto", 2525, "insecure"),
    ],
)
def test_tls_modes_map_to_apprise_urls(
    fields: dict[str, object], scheme: str, port: int, mode: str
) -> None:
    url = urlsplit(mailto_url(EmailOptions.model_validate(fields), "a@example.com"))
    assert (url.scheme, url.port, parse_qs(url.query)["mode"]) == (scheme, port, [mode])


def test_credentials_are_quoted_into_the_url() -> None:
    options = EmailOptions(username="me@example.com", password="p@ss:w/rd?")
    url = urlsplit(mailto_url(options, "a@example.com"))
    assert url.username == "me%40example.com"
    assert url.password == "p%40ss%3Aw%2Frd%3F"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"SMTP_PORT": "not-a-port"}, "port"),
        ({"SMTP_PORT": "70000"}, "port"),
        ({"SMTP_TLS": "maybe"}, "tls"),
        ({"SMTP_FROM": "nobody"}, "from_addr"),
    ],
)
def test_bad_environment_fails_naming_the_field(
    env: dict[str, str], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        EmailOptions()
    assert [e["loc"] for e in info.value.errors()] == [(field,)]


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ValidationError, match="smtp_host"):
        EmailOptions.model_validate({"smtp_host": "x"})


def test_password_is_not_in_the_options_repr() -> None:
    options = EmailOptions(username="u", password="hunter2-secret")
    assert "hunter2-secret" not in repr(options)


@pytest.mark.parametrize(
    ("target", "ok"),
    [
        ("jane@example.com", True),
        ("  jane@example.com ", True),
        ("first.last+tag@sub.example.co.uk", True),
        ("jane", False),
        ("jane@", False),
        ("@example.com", False),
        ("Jane <jane@example.com>", False),
        ("a@example.com,b@example.com", False),
        ("jane doe@example.com", False),
        ("", False),
    ],
)
def test_target_validation(target: str, ok: bool) -> None:
    channel = EmailChannel()
    if ok:
        assert channel.validate_target(target, EmailOptions()) == target.strip()
    else:
        with pytest.raises(ValueError, match="is not one email address"):
            channel.validate_target(target, EmailOptions())


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("jane@example.com", "j***@example.com"),
        ("m@example.com", "m***@example.com"),
        ("not-an-address", "***"),
    ],
)
def test_redact_target_keeps_the_domain(target: str, shown: str) -> None:
    assert EmailChannel().redact_target(target) == shown


async def test_unreachable_server_is_transient_and_hides_the_password(
    channel: EmailChannel,
) -> None:
    options = EmailOptions.model_validate(
        {"host": "127.0.0.1", "port": free_port(), "username": "u", "password": "s3cr3t-pw"}
    )
    with pytest.raises(TransientDeliveryError) as info:
        await channel.send(make_message("jane@example.com", time_limit=5), options)
    text = str(info.value)
    assert "s3cr3t-pw" not in text
    assert "j***@example.com" in text and "jane@" not in text


async def test_refused_recipient_is_not_delivered(
    channel: EmailChannel, smtp_server: SmtpServer
) -> None:
    smtp_server.mailbox.refuse["nobody@example.com"] = "550 5.1.1 no such user"
    with pytest.raises((TransientDeliveryError, PermanentDeliveryError)):
        await channel.send(make_message("nobody@example.com"), options_for(smtp_server))
    assert smtp_server.mailbox.messages == []


async def test_bad_target_at_send_time_is_permanent(channel: EmailChannel) -> None:
    with pytest.raises(PermanentDeliveryError, match="not one email address"):
        await channel.send(make_message("not-an-address"), EmailOptions())
