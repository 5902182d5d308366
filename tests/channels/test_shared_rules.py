"""The rules every channel shares: one channel-name rule, one target mask, one redactor, one
reading of an HTTP provider's status."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.channels import (
    PermanentDeliveryError,
    TransientDeliveryError,
    http_failure,
    mask_email,
    mask_phone,
    redactor,
)
from gateway.core import CHANNEL_NAME_RULE, Subscription


@pytest.mark.parametrize("name", ["email", "a", "ops-2_b", "x" * 64])
def test_a_good_channel_name_is_accepted(name: str) -> None:
    assert Subscription(channel=name, target="t").channel == name


@pytest.mark.parametrize("name", ["Email", "2fa", "-x", "has space", "x" * 65, ""])
def test_a_bad_channel_name_says_the_rule(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        Subscription(channel=name, target="t")
    assert CHANNEL_NAME_RULE in str(info.value)


@pytest.mark.parametrize(
    ("address", "shown"),
    [("jane@example.com", "j***@example.com"), ("nobody", "***"), ("@example.com", "***")],
)
def test_mask_email(address: str, shown: str) -> None:
    assert mask_email(address) == shown


@pytest.mark.parametrize(
    ("number", "shown"),
    [("+1 (555) 123-4567", "+15***67"), ("12", "***"), ("call me maybe", "***")],
)
def test_mask_phone(number: str, shown: str) -> None:
    assert mask_phone(number) == shown


def test_redactor_hides_every_spelling_of_a_secret() -> None:
    redact = redactor(["p@ss word/1"])
    text = "sent p@ss word/1 as p%40ss%20word%2F1 and p%40ss+word%2F1"
    assert redact(text) == "sent [redacted] as [redacted] and [redacted]"


@pytest.mark.parametrize(
    ("status", "retry_after", "kind", "wait"),
    [(429, "7", TransientDeliveryError, 7.0), (503, None, TransientDeliveryError, None),
     (408, "soon", TransientDeliveryError, None), (404, "7", PermanentDeliveryError, None),
     (401, None, PermanentDeliveryError, None)],
)
def test_http_failure(status: int, retry_after: str | None, kind: type[Exception],
                      wait: float | None) -> None:
    error = http_failure(status, f"x answered HTTP {status}", retry_after=retry_after)
    assert type(error) is kind
    assert error.status == status
    assert getattr(error, "retry_after", None) == wait
