"""The one redaction set of a process: every secret value, however it was supplied.

A secret reaches the gateway as a YAML literal, through ``${ENV}`` in the file, or as a
plugin's own environment default (``SMTP_PASSWORD``, ``SLACK_BOT_TOKEN``, ``TWILIO_AUTH_TOKEN``,
``WEBHOOK_SECRET``...). Whatever the way, it ends up in a validated options or configuration
model, so the secrets are collected from the models, generically: every ``SecretStr`` /
``SecretBytes`` value, and every text of a field marked with :data:`SECRET` (for a secret that
must stay a plain ``str``). Each secret is redacted as written and as it appears URL-encoded
inside an Apprise URL. Logs, traces, errors and receipts use the same function, and the same
marker, :data:`MARKER`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, SecretBytes, SecretStr

__all__ = ["MARKER", "MIN_SECRET_LENGTH", "SECRET", "redactor", "secret_values", "spellings"]

#: what a secret is replaced by, everywhere
MARKER = "[redacted]"
#: shorter values are not redacted (they would blank out ordinary words)
MIN_SECRET_LENGTH = 4
#: ``Field(json_schema_extra=SECRET)``: every text of this field is a secret
SECRET: dict[str, Any] = {"secret": True}


def secret_values(value: object) -> set[str]:
    """Every secret inside ``value`` (a pydantic model, or dicts and lists of them)."""
    return {s for s in _walk(value, marked=False) if s}


def _walk(value: object, *, marked: bool) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, SecretBytes):
        yield value.get_secret_value().decode("utf-8", "replace")
    elif isinstance(value, str):
        if marked:
            yield value
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            extra = info.json_schema_extra
            field_marked = isinstance(extra, dict) and extra.get("secret") is True
            yield from _walk(getattr(value, name, None), marked=marked or field_marked)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item, marked=marked)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _walk(item, marked=marked)


def spellings(secret: str) -> set[str]:
    """``secret`` as written and as URL-encoded (path, query and form styles)."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}


def redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function that replaces every spelling of every secret in a text by :data:`MARKER`."""
    values = sorted({v for s in secrets if s and len(s) >= MIN_SECRET_LENGTH
                     for v in spellings(s)}, key=len, reverse=True)

    def redact(text: str) -> str:
        for value in values:
            if value in text:
                text = text.replace(value, MARKER)
        return text

    return redact
