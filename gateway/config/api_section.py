"""The ``api`` and ``hooks`` sections: API keys (hashes) with scopes, the front door's
limits and allowed channels, and the inbound webhook sources with their signature schemes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

if TYPE_CHECKING:
    pass

from gateway.channels import whsec_key
from gateway.config._section import _NAME_RE, ApiTimeout, Section

__all__ = ["SCOPES", "ApiConfig", "ApiKey", "HmacScheme", "HookSource", "Scope"]

Scope = Literal["submit", "subscribe", "read"]
#: what an API key may do: start tasks, add or cancel subscriptions, read tasks
SCOPES: tuple[Scope, ...] = ("submit", "subscribe", "read")
_KEY_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_SIGNED_PARTS = re.compile(r"\{(\w*)\}")


def _all_scopes() -> list[Scope]:
    return list(SCOPES)


class ApiKey(Section):
    """A key of the HTTP API, stored as the SHA-256 of the key (``gateway api-key`` makes one)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str = Field(description="who holds the key; shown in logs, never the key")
    hash: str = Field(description="sha256:<64 hex digits> of the key")
    scopes: list[Scope] = Field(default_factory=_all_scopes, min_length=1)
    tenant: str | None = Field(
        None, description="the tenant the key acts for: it sees only that tenant's tasks, "
                          "which no other key sees; none: the tasks of no tenant")

    @field_validator("name", "tenant")
    @classmethod
    def _name_shape(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not _NAME_RE.fullmatch(v):
            raise ValueError(f"{info.field_name} {v!r} must be letters, digits, '.', '-' or "
                             "'_' (at most 64, starting with a letter or digit)")
        return v

    @field_validator("hash")
    @classmethod
    def _hash_shape(cls, v: str) -> str:
        v = v.strip()
        if not _KEY_HASH.match(v):
            # never echo the value: it may be the key itself
            raise ValueError("must be sha256: followed by 64 lower-case hex digits (the hash "
                             "of the key, not the key: `gateway api-key NAME` prints it)")
        return v


class ApiConfig(Section):
    """The HTTP front door (``gateway.api.front_door``)."""

    keys: list[ApiKey] = Field(default_factory=list,
                               description="API keys; none: every /v1 call but hooks is refused")
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576,
                                description="larger request bodies get 413")
    channels: list[str] | None = Field(
        None, description="channels API callers, inbound hooks and the Restate ingress may "
        "subscribe on (default: the channels of the email, slack, sms and webhook plugins)")
    public_url: str | None = Field(
        None, description="base URL of the API as callers see it, for status_url")
    # the API's own connection limits (the Restate endpoint keeps its raised ones)
    header_timeout: ApiTimeout = Field(10.0, description="a request head must be complete "
                                       "this long after the connection (or its first byte)")
    body_timeout: ApiTimeout = Field(30.0, description="a request body must be complete this "
                                     "long after its head, else 408")
    keep_alive_timeout: ApiTimeout = Field(30.0, description="idle connections between "
                                           "requests are closed after this")
    max_connections: int = Field(1000, ge=1, le=100_000, description="open connections at "
                                 "most; past it new ones are closed at once")

    @field_validator("public_url")
    @classmethod
    def _public_url_shape(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", v):
            raise ValueError(f"{v!r} must be an http:// or https:// URL")
        return v.rstrip("/") if v else v


class HmacScheme(Section):
    """A source's own signature scheme: an HMAC of the body (and timestamp) in a header.

    GitHub: ``{signature_header: X-Hub-Signature-256, prefix: "sha256=", id_header:
    X-GitHub-Delivery}``; Slack: ``{signature_header: X-Slack-Signature, prefix: "v0=",
    timestamp_header: X-Slack-Request-Timestamp, signed: "v0:{timestamp}:{body}", id_header:
    ...}``.
    """

    signature_header: str
    id_header: str = Field(description="header with the delivery's unique id; it names the "
                           "task when signed ({id}) or with a signed timestamp, else the "
                           "body's digest does")
    timestamp_header: str | None = Field(
        None, description="header with unix seconds; requests outside the window are refused")
    signed: str = Field("{body}", description="what is signed: {body}, {timestamp}, {id}")
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field("", description="text before the digest in the header, e.g. sha256=")

    @field_validator("signature_header", "id_header", "timestamp_header")
    @classmethod
    def _header_name(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9-]{1,64}$", v):
            raise ValueError(f"{v!r} is not a header name")
        return v

    @field_validator("signed")
    @classmethod
    def _signed_parts(cls, v: str, info: ValidationInfo) -> str:
        parts = _SIGNED_PARTS.findall(v)
        unknown = sorted(set(parts) - {"body", "timestamp", "id"})
        if unknown:
            raise ValueError(f"unknown part {{{unknown[0]}}}; use {{body}}, {{timestamp}} "
                             "and {id}")
        if "body" not in parts:
            raise ValueError("must contain {body}")
        if "timestamp" in parts and info.data.get("timestamp_header") is None:
            raise ValueError("uses {timestamp}; name its header in timestamp_header")
        return v


class HookSource(Section):
    """An inbound webhook source, served at ``POST /v1/hooks/{name}``: how its requests are
    verified (Standard Webhooks by default, or ``hmac``) and how a payload becomes a task.
    ``prompt`` and the values of ``labels`` are Jinja2 templates (sandboxed) over
    ``payload`` (the JSON body), ``source`` and ``webhook_id``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    hmac: HmacScheme | None = Field(None, description="the source's HMAC header scheme; "
                                    "default: Standard Webhooks")
    secret: SecretStr | list[SecretStr] = Field(
        description="whsec_ secret (Standard Webhooks) or the source's shared secret; several "
                    "while rotating")
    agent: str = "default"
    prompt: str = Field(min_length=1, description="template of the task's prompt")
    labels: dict[str, str] = Field(default_factory=dict, description="label -> template")
    tenant: str | None = Field(
        None, description="the tenant whose keys see this source's tasks; none: keys of no "
                          "tenant do")

    @property
    def secrets(self) -> list[str]:
        items = self.secret if isinstance(self.secret, list) else [self.secret]
        return [s.get_secret_value() for s in items]

    @field_validator("tenant")
    @classmethod
    def _tenant_shape(cls, v: str | None) -> str | None:
        if v is not None and not _NAME_RE.fullmatch(v):
            raise ValueError(f"tenant {v!r} must be letters, digits, '.', '-' or '_' (at "
                             "most 64, starting with a letter or digit)")
        return v

    @field_validator("secret")
    @classmethod
    def _secret_shape(cls, v: SecretStr | list[SecretStr],
                      info: ValidationInfo) -> SecretStr | list[SecretStr]:
        items = v if isinstance(v, list) else [v]
        if not items or not all(s.get_secret_value().strip() for s in items):
            raise ValueError("give a secret (several while rotating); none may be empty")
        standard = "hmac" in info.data and info.data["hmac"] is None
        for i, item in enumerate(items if standard else []):
            problem = _whsec_problem(item.get_secret_value())
            if problem:
                where = f"item {i}: " if isinstance(v, list) else ""
                raise ValueError(f"{where}{problem} (a Standard Webhooks secret)")
        return v


def _whsec_problem(value: str) -> str | None:
    """Why ``value`` is not a Standard Webhooks secret (``whsec_`` + base64), or None."""
    try:
        whsec_key(value, prefix_required=False)
    except ValueError as exc:
        return str(exc)
    return None
