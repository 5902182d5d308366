"""gateway.core.text.shorten: never cut mid-word without an ellipsis."""

from __future__ import annotations

import pytest

from gateway.core import shorten


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("fits", 10, "fits"),
        ("exactly ten", 11, "exactly ten"),
        ("the quick brown fox jumps", 15, "the quick…"),
        ("the quick brown fox jumps", 16, "the quick brown…"),
        ("the quick brown fox jumps", 17, "the quick brown…"),
        ("the quick, brown fox", 11, "the quick,…"),
        ("word   \n\n  next thing here", 12, "word…"),
        ("supercalifragilisticexpialidocious", 10, "supercali…"),
        ("a supercalifragilisticexpialidocious", 10, "a superca…"),
        ("anything", 1, "…"),
        ("", 5, ""),
    ],
)
def test_shorten(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected
    assert len(shorten(text, limit)) <= limit


def test_custom_ellipsis() -> None:
    assert shorten("one two three four", 12, ellipsis="...") == "one two..."


def test_limit_shorter_than_the_ellipsis() -> None:
    with pytest.raises(ValueError, match="shorter than the ellipsis"):
        shorten("text", 2, ellipsis="...")


@pytest.mark.parametrize("limit", range(1, 60))
def test_never_cuts_mid_word_without_ellipsis(limit: int) -> None:
    text = "Deployment of the notification gateway finished successfully in 42 seconds"
    out = shorten(text, limit)
    assert len(out) <= limit
    assert out.endswith("…")
    words = out.removesuffix("…").split()
    assert all(w in text.split() for w in words[:-1])
