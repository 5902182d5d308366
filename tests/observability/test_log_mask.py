"""What a library's log line may say about a subscriber: the domain or host, never who."""

from __future__ import annotations

import pytest

from gateway.observability._log_mask import mask_addresses, mask_library_lines


@pytest.mark.parametrize(("said", "logged"), [
    ("Sent Email to me@example.com", "Sent Email to m***@example.com"),
    ("Sent Email to a.b+c@mail.example.co.uk.", "Sent Email to a***@mail.example.co.uk."),
    ("Sent Twilio notification to +15551234567.", "Sent Twilio notification to +15***67."),
    ("Posting to https://user:pw@hooks.slack.com/services/T0/B0/xyz?x=1 now",
     "Posting to https://hooks.slack.com/*** now"),
    ("Connecting to https://example.com:8443/", "Connecting to https://example.com:8443"),
    ("Notifying 1 service(s).", "Notifying 1 service(s)."),
    ("port 8080, 12345678 bytes", "port 8080, 12345678 bytes"),
])
def test_addresses_in_a_library_line_are_masked(said: str, logged: str) -> None:
    assert mask_addresses(said) == logged


def test_only_the_masked_libraries_lines_are_touched() -> None:
    line = {"logger": "apprise", "event": "Sent Email to me@example.com",
            "message": "Sent Email to me@example.com"}
    assert mask_library_lines(None, "info", dict(line)) == {
        "logger": "apprise", "event": "Sent Email to m***@example.com",
        "message": "Sent Email to m***@example.com"}
    child = {"logger": "apprise.plugins", "event": "to me@example.com"}
    assert mask_library_lines(None, "info", dict(child))["event"] == "to m***@example.com"
    own = {"logger": "gateway.api", "event": "task started by me@example.com"}
    assert mask_library_lines(None, "info", dict(own)) == own
