"""Inbound webhooks: verify a source's request, then turn its payload into a task.

Standard Webhooks (the default): the ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` headers, checked by the ``standardwebhooks`` library against each
configured secret (several while rotating). A source's own scheme (``hooks.NAME.hmac``): an
HMAC of ``signed`` (the body, and the timestamp or id where the source signs them) in one
header, its delivery id in another. Either way a timestamp more than five minutes off is
refused, and every comparison is constant-time.

A delivery's task id is its dedup key, so a retried delivery is the same Restate workflow and
runs once: Restate itself deduplicates, with no database of ours. The key is made only of
what the signature covers (:func:`replay_key`): the delivery id where it is signed (Standard
Webhooks; ``{id}`` in an HMAC scheme's ``signed``) or where a signed timestamp bounds how
long a captured request stays valid, else the body's digest. So a captured delivery sent
again under a new, unsigned delivery id is still the same task.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError, TemplateSyntaxError
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.channels import format_validation_error
from gateway.config.schema import HmacScheme, HookSource
from gateway.core import TaskRequest
from gateway.core.template_limits import TemplateLimitError, render_limited
from gateway.core.templates import TOO_DEEP, environment

__all__ = [
    "WINDOW_SECONDS",
    "HookRejected",
    "MappingFailed",
    "hook_task_id",
    "replay_key",
    "signs_timestamp",
    "task_request",
    "template_problems",
    "verify",
]

#: how far a signature's timestamp may be from now, either way (replays are refused)
WINDOW_SECONDS = 300
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_MAX_TASK_ID = 128
_DIGESTS: Mapping[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512,
}


class HookRejected(Exception):
    """The request is not an authentic, fresh delivery of the source; says why (no secrets)."""


class MappingFailed(Exception):
    """The payload does not make a valid task under the source's mapping."""


def verify(hook: HookSource, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """The delivery id of an authentic request from ``hook``'s source, or HookRejected.
    ``headers`` has lower-case names."""
    if hook.hmac is not None:
        return _verify_hmac(hook.hmac, hook.secrets, headers, body, now)
    return _verify_standard(hook.secrets, headers, body, now)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise HookRejected(f"missing header {name}")
    return value


def _check_time(value: str, header: str, now: float) -> int:
    if not re.fullmatch(r"[0-9]{1,12}", value):  # a huge number would overflow the check
        raise HookRejected(f"{header} is not unix seconds")
    timestamp = int(value)
    if abs(now - timestamp) > WINDOW_SECONDS:
        raise HookRejected(f"{header} is more than {WINDOW_SECONDS // 60} minutes off: a "
                           "stale or replayed delivery, or a clock that is wrong")
    return timestamp


def _verify_standard(secrets: list[str], headers: Mapping[str, str], body: bytes,
                     now: float) -> str:
    webhook_id = _header(headers, "webhook-id")
    _check_time(_header(headers, "webhook-timestamp"), "webhook-timestamp", now)
    _header(headers, "webhook-signature")
    wanted = {k: headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    for secret in secrets:
        try:
            Webhook(secret).verify(body, wanted, json_parse=False)
        except WebhookVerificationError:
            continue
        except (ValueError, binascii.Error):  # the library's parsing of a malformed header/body
            raise HookRejected("malformed webhook-signature (want 'v1,<base64>' items) or a "
                               "body that is not UTF-8") from None
        return webhook_id
    raise HookRejected("webhook-signature does not match any configured secret")


def _signed_bytes(template: str, body: bytes, timestamp: str, webhook_id: str) -> bytes:
    parts = {"body": body, "timestamp": timestamp.encode(), "id": webhook_id.encode()}
    out = b""
    for i, piece in enumerate(re.split(r"\{(body|timestamp|id)\}", template)):
        out += parts[piece] if i % 2 else piece.encode()
    return out


def _verify_hmac(scheme: HmacScheme, secrets: list[str], headers: Mapping[str, str],
                 body: bytes, now: float) -> str:
    presented = _header(headers, scheme.signature_header)
    webhook_id = _header(headers, scheme.id_header)
    timestamp = ""
    if scheme.timestamp_header is not None:
        timestamp = _header(headers, scheme.timestamp_header)
        _check_time(timestamp, scheme.timestamp_header, now)
    if not presented.startswith(scheme.prefix):
        raise HookRejected(f"{scheme.signature_header} does not start with {scheme.prefix!r}")
    digest_text = presented[len(scheme.prefix):].strip()
    if scheme.encoding == "hex":
        digest_text = digest_text.lower()
    signed = _signed_bytes(scheme.signed, body, timestamp, webhook_id)
    matched = False
    for secret in secrets:
        digest = hmac.new(secret.encode(), signed, _DIGESTS[scheme.algorithm]).digest()
        expected = digest.hex() if scheme.encoding == "hex" else base64.b64encode(digest).decode()
        # every secret is compared, so the time taken says nothing about which one matched
        matched |= hmac.compare_digest(expected.encode(), digest_text.encode("utf-8", "replace"))
    if not matched:
        raise HookRejected(f"{scheme.signature_header} does not match any configured secret")
    return webhook_id


def signs_timestamp(scheme: HmacScheme) -> bool:
    """Whether an HMAC scheme signs a timestamp (so a captured request expires)."""
    return scheme.timestamp_header is not None and "{timestamp}" in scheme.signed


def replay_key(hook: HookSource, webhook_id: str, body: bytes) -> str:
    """What names the task of a verified delivery: only what an attacker cannot change
    without the secret. The delivery id when the signature covers it (Standard Webhooks, or
    ``{id}`` in ``signed``) or a signed timestamp limits a replay to the window; otherwise
    (GitHub style: the id header is not signed) ``sha256:`` and the body's digest, so the
    same signed body is the same task whatever delivery id comes with it."""
    scheme = hook.hmac
    if scheme is None or "{id}" in scheme.signed or signs_timestamp(scheme):
        return webhook_id
    return "sha256:" + hashlib.sha256(body).hexdigest()


def hook_task_id(source: str, key: str) -> str:
    """The task id of a delivery from its :func:`replay_key`: readable when the key allows,
    else its hash."""
    readable = f"hook-{source}-{key}"
    if _SAFE_ID.match(key) and len(readable) <= _MAX_TASK_ID:
        return readable
    digest = hashlib.sha256(f"{source}\x00{key}".encode()).hexdigest()[:32]
    return f"hook-{source}-{digest}"


@lru_cache(maxsize=512)
def _compile(source: str) -> Template:
    return environment("plain").from_string(source)


def _templates(hook: HookSource) -> Iterator[tuple[tuple[str, ...], str]]:
    yield ("prompt",), hook.prompt
    for label, source in hook.labels.items():
        yield ("labels", label), source


def template_problems(hook: HookSource) -> list[tuple[tuple[str, ...], int | None, str]]:
    """``(key path, line in the template, message)`` for each template that does not compile."""
    problems: list[tuple[tuple[str, ...], int | None, str]] = []
    for where, source in _templates(hook):
        try:
            compiled = _compile(source)
        except TemplateSyntaxError as exc:
            problems.append((where, exc.lineno, f"syntax error: {exc.message}"))
            continue
        except TemplateError as exc:
            problems.append((where, None, str(exc)))
            continue
        except RecursionError:
            problems.append((where, None, TOO_DEEP))
            continue
        try:  # on an empty payload: a template that blows up whatever it gets
            render_limited(compiled, {"payload": {}, "source": "sample", "webhook_id": "1"})
        except TemplateLimitError as exc:
            problems.append((where, None, f"fails on an empty payload: {exc}"))
        except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError):
            pass  # depends on the payload: reported when a delivery is mapped
    return problems


def task_request(hook: HookSource, source: str, webhook_id: str, payload: Any) -> TaskRequest:
    """The task a verified delivery starts, by the source's mapping; MappingFailed says why not."""
    scope = {"payload": payload, "source": source, "webhook_id": webhook_id}
    rendered: dict[tuple[str, ...], str] = {}
    for where, template in _templates(hook):
        try:
            rendered[where] = render_limited(_compile(template), scope).strip()
        except TemplateError as exc:
            raise MappingFailed(f"hooks.{source}.{'.'.join(where)}: {exc}") from None
    labels = {"hook": source}
    labels.update({where[1]: value for where, value in rendered.items() if where[0] == "labels"})
    try:
        return TaskRequest(prompt=rendered[("prompt",)], agent=hook.agent, labels=labels)
    except ValidationError as exc:
        raise MappingFailed(f"the mapping of hooks.{source} made no valid task: "
                            f"{format_validation_error(exc)}") from None
