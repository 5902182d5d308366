"""The sms channel: the Twilio API request intercepted with ``responses``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs

import pytest
import requests
import responses
from gateway_channel_sms import SmsChannel, SmsOptions, normalize_number, sms_text, sms_url
from pydantic import ValidationError

from gateway.core import PermanentDeliveryError, TransientDeliveryError
from tests.channels.conftest import make_message

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f00dSECRETtoken1234"
MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
TWILIO_ENV = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM")


@pytest.fixture(autouse=True)
def _no_twilio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TWILIO_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def twilio() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
async def channel() -> AsyncIterator[SmsChannel]:
    ch = SmsChannel()
    yield ch
    await ch.aclose()


def twilio_options(**extra: object) -> SmsOptions:
    return SmsOptions.model_validate(
        {"account_sid": SID, "auth_token": TOKEN, "from_number": "+15550001111", **extra}
    )


def form(mock: responses.RequestsMock, index: int = 0) -> dict[str, list[str]]:
    body = mock.calls[index].request.body
    assert isinstance(body, str)
    return parse_qs(body)


async def test_twilio_request_has_to_from_body_and_basic_auth(
    channel: SmsChannel, twilio: responses.RequestsMock
) -> None:
    twilio.add(responses.POST, MESSAGES, json={"sid": "SM123"}, status=201)
    message = make_message("+1 (555) 123-4567", subject="not sent", text="Task done: 3 files.")
    receipt = await channel.send(message, twilio_options())

    assert receipt.detail == "accepted by Twilio"
    [call] = twilio.calls
    assert call.request.url == MESSAGES
    assert form(twilio) == {"To": ["+15551234567"], "From": ["+15550001111"],
                            "Body": ["Task done: 3 files."]}
    expected = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"


async def test_credentials_from_environment(
    channel: SmsChannel, twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("TWILIO_FROM", "+15550002222")
    twilio.add(responses.POST, MESSAGES, json={"sid": "SM1"}, status=201)
    await channel.send(make_message("+447700900123"), SmsOptions())
    assert form(twilio)["From"] == ["+15550002222"]
    assert form(twilio)["To"] == ["+447700900123"]


async def test_a_long_text_is_shortened_at_a_word_with_an_ellipsis(
    channel: SmsChannel, twilio: responses.RequestsMock
) -> None:
    twilio.add(responses.POST, MESSAGES, json={"sid": "SM1"}, status=201)
    text = "The quarterly report is finished and uploaded " * 6
    await channel.send(make_message("+15551234567", text=text), twilio_options())
    [body] = form(twilio)["Body"]
    assert len(body) <= 160 and body.endswith("...")
    assert text.startswith(body.removesuffix("..."))
    assert body.removesuffix("...").split()[-1] in text.split()


async def test_other_provider_by_apprise_url(
    channel: SmsChannel, twilio: responses.RequestsMock
) -> None:
    twilio.add(responses.POST, "https://rest.nexmo.com/sms/json",
               json={"messages": [{"status": "0"}]})
    options = SmsOptions.model_validate({"url": "vonage://key123:SECRETabc@15550003333/{to}"})
    await channel.send(make_message("+15551234567", text="hello"), options)
    [call] = twilio.calls
    body = call.request.body
    assert isinstance(body, str)
    sent = parse_qs(body)
    assert (sent["to"], sent["from"], sent["text"]) == (["15551234567"], ["15550003333"],
                                                         ["hello"])


@pytest.mark.parametrize(
    ("status", "payload", "error", "code"),
    [
        (500, {}, TransientDeliveryError, 500),
        (503, {}, TransientDeliveryError, 503),
        (429, {"code": 20429, "message": "Too Many Requests"}, TransientDeliveryError, 429),
        (400, {"code": 21211, "message": "The 'To' number +15551234567 is not valid"},
         PermanentDeliveryError, None),
        (401, {}, PermanentDeliveryError, 401),
    ],
)
async def test_status_mapping(
    channel: SmsChannel, twilio: responses.RequestsMock, status: int, payload: dict[str, object],
    error: type[Exception], code: int | None,
) -> None:
    twilio.add(responses.POST, MESSAGES, json=payload, status=status)
    with pytest.raises(error) as info:
        await channel.send(make_message("+15551234567"), twilio_options())
    text = str(info.value)
    assert getattr(info.value, "status", None) == code
    assert TOKEN not in text and "5551234567" not in text and "+15***67" in text


async def test_connection_error_is_transient(
    channel: SmsChannel, twilio: responses.RequestsMock
) -> None:
    twilio.add(responses.POST, MESSAGES, body=requests.ConnectionError("reset"))
    with pytest.raises(TransientDeliveryError, match="could not connect"):
        await channel.send(make_message("+15551234567"), twilio_options())


async def test_missing_twilio_settings_are_permanent(channel: SmsChannel) -> None:
    with pytest.raises(PermanentDeliveryError, match="account_sid, auth_token, from_number"):
        await channel.send(make_message("+15551234567"), SmsOptions())


@pytest.mark.parametrize(
    ("number", "normal"),
    [
        ("+15551234567", "+15551234567"),
        ("+1 (555) 123-4567", "+15551234567"),
        ("+44 7700.900.123", "+447700900123"),
        ("0044 7700 900123", "+447700900123"),
        ("5551234567", None),
        ("+0551234567", None),
        ("+1555", None),
        ("+1234567890123456", None),
        ("+1555CALLNOW", None),
        ("", None),
    ],
)
def test_target_validation(number: str, normal: str | None) -> None:
    channel = SmsChannel()
    if normal is None:
        with pytest.raises(ValueError, match=r"E\.164"):
            channel.validate_target(number, twilio_options())
        with pytest.raises(ValueError, match=r"E\.164"):
            normalize_number(number)
    else:
        assert channel.validate_target(number, twilio_options()) == normal


def test_target_without_provider_is_rejected_at_subscribe_time() -> None:
    with pytest.raises(ValueError, match="TWILIO_ACCOUNT_SID"):
        SmsChannel().validate_target("+15551234567", SmsOptions())


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"account_sid": "AC123"}, "account_sid", "32 hex"),
        ({"from_number": "555"}, "from_number", "E.164"),
        ({"url": "vonage://key:secret@15550003333"}, "url", "{to}"),
        ({"url": "nosuchservice://SECRETx/{to}"}, "url", "not a URL Apprise can parse"),
        ({"timeout": 5}, "timeout", "Extra inputs"),  # the attempt timeout is the core's
    ],
)
def test_bad_options_fail_naming_the_field(
    fields: dict[str, object], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as info:
        SmsOptions.model_validate(fields)
    [err] = info.value.errors()
    assert err["loc"] == (field,) and says in err["msg"]
    assert "secret" not in str(info.value).lower()


def test_twilio_url_quotes_the_token() -> None:
    url = sms_url(twilio_options(auth_token="a/b?c"), "+15551234567")
    assert url == f"twilio://{SID}:a%2Fb%3Fc@+15550001111/+15551234567"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short", "short"),
        ("x" * 160, "x" * 160),
        ("word " * 40, ("word " * 31).strip() + "..."),
        ("Grüße " * 30, ("Grüße " * 26).strip() + "…"),
    ],
)
def test_sms_text(text: str, expected: str) -> None:
    assert sms_text(text) == expected
    assert len(sms_text(text)) <= 160


def test_redact_target() -> None:
    assert SmsChannel().redact_target("+15551234567") == "+15***67"
    assert SmsChannel().redact_target("12") == "***"


def test_channel_declares_one_sms() -> None:
    assert SmsChannel.max_text_length == 160
