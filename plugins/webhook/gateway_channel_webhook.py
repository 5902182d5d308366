"""The ``webhook`` channel: a JSON POST signed per the Standard Webhooks spec.

The body is ``message.data`` (or, when it is empty, a small document with the message's id,
task id, subscription id, kind, subject and text), as compact UTF-8 JSON. The headers are
``webhook-id`` (the message id: the same for every retry, so receivers can drop duplicates),
``webhook-timestamp`` (unix seconds of this attempt) and ``webhook-signature``: one
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` per secret, made by the
``standardwebhooks`` reference library and space-separated, so a receiver keeps verifying
while secrets are rotated.

Secrets are ``whsec_`` + base64 of at least 16 random bytes (``options.secret``, one or a list,
default: the ``WEBHOOK_SECRET`` environment variable, several separated by spaces or commas).
Unsigned webhooks are refused unless ``allow_unsigned: true`` says so explicitly.

Outgoing webhooks refuse targets in private, loopback, link-local, shared, reserved,
unspecified and multicast ranges (the egress guard's classification) unless the channel allows
private targets in the YAML file (``allow_private_targets: true``, as a channel setting or this
option): IP literals when the subscription is made, resolved addresses at send time; the
request then goes to the checked address (TLS still verifies the host name), so DNS cannot swap
in another one in between. The egress guard checks the connection again where the event loop
connects through Python's sockets (asyncio's loop; uvloop connects in libuv).

Requests go over keep-alive HTTP/1.1 through the gateway's lean POST client
(``gateway.channels.PostClient``: httpx with httpcore, anyio and h11 under it was the largest
part of the gateway's CPU under a burst), at most ``MAX_IN_FLIGHT`` at once per process;
redirects are not followed and no HTTP proxy is used.

Responses: 2xx delivered; 408, 425, 429 and 5xx transient (``Retry-After`` in seconds or as an
HTTP date becomes ``retry_after``); 3xx (never followed) and other 4xx permanent; time-outs,
DNS and connection failures transient.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from standardwebhooks.webhooks import Webhook

from gateway.channels import (
    Channel,
    Message,
    PermanentDeliveryError,
    PostClient,
    PostResponse,
    PostTransportError,
    SendReceipt,
    TransientDeliveryError,
    classify_address,
    current_policy,
    http_failure,
    parse_retry_after,
    whsec_key,
)

__all__ = [
    "WebhookChannel",
    "WebhookOptions",
    "check_address",
    "parse_retry_after",
    "sign",
    "webhook_body",
]

#: requests in flight at once per process (and idle connections kept); more wait their turn
MAX_IN_FLIGHT = 64
_RESERVED_HEADERS = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length",
     "host", "transfer-encoding"}
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_USER_AGENT = "notification-gateway-webhook/0.1"


class _WebhookEnv(BaseSettings):
    """The channel's environment: ``WEBHOOK_SECRET`` (several separated by spaces or commas)."""

    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", extra="ignore")

    secret: SecretStr | None = None


def _env_secrets() -> Any:
    """``WEBHOOK_SECRET`` split on spaces/commas, or None; validated by the options model."""
    value = _WebhookEnv().secret
    parts = [p for p in re.split(r"[\s,]+", value.get_secret_value() if value else "") if p]
    return parts or None


class WebhookOptions(BaseModel):
    """Signing, address policy and HTTP settings of the ``webhook`` channel."""

    model_config = ConfigDict(extra="forbid", validate_default=True, hide_input_in_errors=True)

    secret: SecretStr | list[SecretStr] | None = Field(
        default_factory=_env_secrets,
        description="whsec_ secret(s); several sign each message during key rotation",
    )
    allow_unsigned: bool = Field(False, description="send without a signature if no secret")
    allow_private_targets: bool = Field(
        False, description="allow private, loopback and link-local targets (tests, intranets)"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="extra static headers")

    @field_validator("secret")
    @classmethod
    def _secrets_are_whsec(
        cls, v: SecretStr | list[SecretStr] | None
    ) -> SecretStr | list[SecretStr] | None:
        items = v if isinstance(v, list) else [v] if v is not None else []
        for i, item in enumerate(items):
            try:
                whsec_key(item.get_secret_value())
            except ValueError as exc:
                where = f"item {i}: " if isinstance(v, list) else ""
                raise ValueError(f"{where}{exc}") from None
        if isinstance(v, list) and not v:
            return None
        return v

    @field_validator("headers")
    @classmethod
    def _headers_are_extra(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the channel and cannot be overridden")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} has a line break in its value")
        return v

    @property
    def keys(self) -> list[bytes]:
        """The HMAC keys, in the order given."""
        secret = self.secret
        items = secret if isinstance(secret, list) else [secret] if secret is not None else []
        return [whsec_key(s.get_secret_value()) for s in items]


def webhook_body(message: Message) -> bytes:
    """The exact bytes that are posted and signed."""
    doc: dict[str, Any] = dict(message.data) or {
        "id": message.id,
        "task_id": message.task_id,
        "subscription_id": message.subscription_id,
        "kind": message.kind,
        "subject": message.subject,
        "text": message.text,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def sign(msg_id: str, timestamp: int, body: bytes, keys: Sequence[bytes]) -> str:
    """The ``webhook-signature`` header value: one ``v1,<base64>`` per key."""
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    data = body.decode()  # webhook_body is UTF-8 JSON
    return " ".join(Webhook(key).sign(msg_id, when, data) for key in keys)


def check_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` is not a public address (e.g. ``"loopback"``), or None if it is."""
    return classify_address(ip)


def _private_allowed(options: WebhookOptions) -> bool:
    """The YAML file allowed private targets: this option, or the channel's setting (the
    egress policy of the delivery or subscription being checked)."""
    policy = current_policy()
    return options.allow_private_targets or (policy is not None and policy.allow_private)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class WebhookChannel(Channel[WebhookOptions]):
    """Signed JSON POST to an http(s) URL (``webhook:https://example.com/hooks/agent``)."""

    name: ClassVar[str] = "webhook"
    Options: ClassVar[type[BaseModel]] = WebhookOptions
    template_kind: ClassVar[str] = "webhook"
    #: a subscriber may sign with its own secret and lower the attempt timeout of its
    #: subscription (``timeout``, the core's); headers and the address policy are the operator's
    subscriber_options: ClassVar[frozenset[str]] = frozenset({"secret", "timeout"})

    def __init__(self) -> None:
        self._client: PostClient | None = None
        self._in_flight: asyncio.Semaphore | None = None

    # -- target --------------------------------------------------------------------------

    def validate_target(self, target: str, options: WebhookOptions) -> str:
        url = target.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{self.redact_target(url)!r} must be an http:// or https:// URL")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise ValueError(
                f"{self.redact_target(url)!r} has credentials in the URL; "
                "put them in options.headers instead"
            )
        try:
            host, _port = parts.hostname, parts.port
        except ValueError as exc:
            raise ValueError(f"{self.redact_target(url)!r}: {exc}") from None
        if not host:
            raise ValueError(f"{url!r} has no host")
        if any(ch.isspace() for ch in url):
            raise ValueError(f"{self.redact_target(url)!r} contains white space")
        if not _private_allowed(options):
            ip = _ip_literal(host)
            why = check_address(ip) if ip is not None else (
                "loopback" if host.lower().rstrip(".") in ("localhost", "localhost.localdomain")
                or host.lower().endswith(".localhost") else None
            )
            if why is not None:
                raise ValueError(
                    f"{self.redact_target(url)!r} is a {why} address; outgoing webhooks only go "
                    "to public addresses unless the YAML file sets allow_private_targets for "
                    "the channel"
                )
        if not options.secret and not options.allow_unsigned:
            raise ValueError(
                "no signing secret: set options.secret to a whsec_ secret (or WEBHOOK_SECRET), "
                "or options.allow_unsigned: true to send unsigned webhooks"
            )
        return url

    def target_hosts(self, target: str, options: WebhookOptions) -> list[str]:
        return [urlsplit(target.strip()).hostname or ""]

    def redact_target(self, target: str) -> str:
        parts = urlsplit(target.strip())
        try:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return f"{parts.scheme}://…"
        if ":" in host:
            host = f"[{host}]"
        return f"{parts.scheme}://{host}{port}{parts.path}"

    # -- delivery ------------------------------------------------------------------------

    def _slots(self) -> asyncio.Semaphore:
        """At most MAX_IN_FLIGHT requests at once, queued here in FIFO order."""
        if self._in_flight is None:
            self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        return self._in_flight

    def _post_client(self) -> PostClient:
        """The channel's one client (made on first use, in the loop that delivers), with
        MAX_IN_FLIGHT idle connections at most."""
        if self._client is None:
            # the CA bundle httpx verifies with (certifi), loaded once: about 0.1 s of CPU
            self._client = PostClient(ssl_context=httpx.create_ssl_context(),
                                      idle=MAX_IN_FLIGHT, user_agent=_USER_AGENT)
        return self._client

    async def _resolve(
        self, host: str, port: int
    ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]

    async def _checked_address(self, url: httpx.URL, what: str) -> str | None:
        """A public address of ``url``'s host, resolved and checked, to connect to instead of
        the name (TLS still verifies the name); None when the host is an IP literal."""
        host = url.host
        ip = _ip_literal(host)
        if ip is not None:
            why = check_address(ip)
            if why is not None:
                raise PermanentDeliveryError(f"{what}: {ip} is a {why} address; refused")
            return None
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise TransientDeliveryError(f"{what}: cannot resolve {host}: {exc}") from None
        for address in addresses:
            why = check_address(address)
            if why is not None:
                raise PermanentDeliveryError(
                    f"{what}: {host} resolves to {address}, a {why} address; refused "
                    "(the channel's allow_private_targets in the YAML file allows it)"
                )
        if not addresses:
            raise TransientDeliveryError(f"{what}: {host} resolves to no address")
        return str(addresses[0])

    async def send(self, message: Message, options: WebhookOptions) -> SendReceipt:
        what = f"webhook to {self.redact_target(message.target)}"
        try:
            target = self.validate_target(message.target, options)
        except ValueError as exc:
            raise PermanentDeliveryError(f"webhook: {exc}") from None
        body = webhook_body(message)
        timestamp = int(time.time())
        headers = [
            *options.headers.items(),
            ("content-type", "application/json"),
            ("webhook-id", message.id),
            ("webhook-timestamp", str(timestamp)),
        ]
        keys = options.keys
        if keys:
            headers.append(("webhook-signature", sign(message.id, timestamp, body, keys)))
        url = httpx.URL(target)
        # the whole send, from here, ends a little before the attempt timeout: this error
        # (not the core's cutoff) says what happened
        limit = message.send_timeout
        try:
            async with asyncio.timeout(limit):
                response = await self._post(url, body, headers, options, what)
        except TimeoutError:
            raise TransientDeliveryError(
                f"{what}: timed out after {limit:g}s (attempt timeout {message.time_limit:g}s)"
            ) from None
        except PostTransportError as exc:
            raise TransientDeliveryError(f"{what}: {type(exc).__name__}: {exc}") from None
        return _receipt(response, what)

    async def _post(self, url: httpx.URL, body: bytes, headers: list[tuple[str, str]],
                    options: WebhookOptions, what: str) -> PostResponse:
        address = None if _private_allowed(options) else await self._checked_address(url, what)
        port = url.port or (443 if url.scheme == "https" else 80)
        async with self._slots():
            return await self._post_client().post(
                scheme=url.scheme, host=url.host, port=port,
                target=url.raw_path.decode("ascii"), host_header=url.netloc.decode("ascii"),
                headers=headers, body=body, connect_to=address)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _receipt(response: PostResponse, what: str) -> SendReceipt:
    status = response.status
    said = f"HTTP {status} {response.reason}".strip()
    if 200 <= status < 300:
        return SendReceipt(provider_status=status, detail=said)
    if 300 <= status < 400:
        raise PermanentDeliveryError(
            f"{what}: {said}: redirects are not followed; subscribe the final URL", status=status
        )
    raise http_failure(status, f"{what}: {said}", retry_after=response.headers.get("retry-after"))
