"""Restate request identity keys as the gateway checks them at start (GATEWAY_IDENTITY_KEYS)."""

from __future__ import annotations

import os

import pytest

from gateway.api import encode_public_key, parse_identity_keys
from gateway.core import UserInputError

# a key as restate-server 1.7 logs it at start ("Loaded request identity key", kid); the
# rehearsal (tests/k8s/test_rehearsal.py) checks the encoding against a live server's log
RESTATE_LOGGED = "publickeyv1_25NcHjMTi4pSAxdRgFPr2j7NT3X1E52w4GMPNrzRQ2hx"


def test_keys_round_trip_and_match_restates_encoding() -> None:
    for raw in (os.urandom(32), b"\0" * 3 + os.urandom(29), b"\xff" * 32):
        key = encode_public_key(raw)
        assert parse_identity_keys(f" {key} ") == [key]
    assert parse_identity_keys(RESTATE_LOGGED) == [RESTATE_LOGGED]


def test_unset_means_no_keys_and_empty_fails_closed() -> None:
    assert parse_identity_keys(None) == []
    with pytest.raises(UserInputError, match="is blank"):
        parse_identity_keys("")


@pytest.mark.parametrize(("key", "problem"), [
    ("publickeyv1_SetMeToYourRestateKey", "decodes to 16 bytes, not 32"),
    ("SetMeToYourRestateKey", "does not start with publickeyv1_"),
    ("publickeyv1_0OIl" + "1" * 40, "is not base58"),
    ("publickeyv1_" + "z" * 10_000, "is too long"),
])
def test_a_key_that_is_not_a_key_is_one_line_saying_what_to_set(key: str, problem: str) -> None:
    with pytest.raises(UserInputError) as caught:
        parse_identity_keys(f"{RESTATE_LOGGED},{key}")
    message = str(caught.value)
    assert message.startswith("GATEWAY_IDENTITY_KEYS: ") and problem in message
    assert "\n" not in message and len(message) < 400
