"""The ``apprise`` channel, and the Apprise runner the email and sms channels share.

Apprise's ``notify`` is blocking, retries nothing we want it to retry and reports failure as
a value. :class:`AppriseRunner` runs it in a bounded pool of worker threads (never on the event
loop) and turns its :class:`apprise.AppriseResult` into a :class:`~gateway.channels.SendReceipt`
or a raised :class:`~gateway.core.errors.DeliveryError`:

* success of the (single) service's last attempt -> receipt;
* Apprise gave up waiting (``TIMEOUT``) or the connection failed -> transient;
* the provider answered an HTTP status (Apprise logs ``error=NNN``): 408, 425, 429 and 5xx are
  transient, any other 4xx is permanent;
* any other failure -> transient, so the retry policy (and then the fallback) decides.

Apprise does not expose response headers, so ``retry_after`` is never set for these channels.
Error messages are built from Apprise's own warnings with every secret of the URL scrubbed, and
targets are shown as Apprise's privacy URL.

Apprise runs in worker threads with the caller's context, so the egress guard of the delivery
applies to its connections. A subscriber that does not come from the YAML file may not choose
the HTTP method (``?method=``), headers (``+Name=``), query parameters (``-name=``) or body
fields (``:field=``) of a URL: only the operator may.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Literal
from urllib.parse import unquote

import apprise
from apprise import AppriseAsset, AppriseResultStatus, NotifyFormat, PersistentStoreMode
from apprise.manager_plugins import NotificationManager
from apprise.utils.parse import parse_qsd
from pydantic import BaseModel, ConfigDict, Field

from gateway.channels import (
    Channel,
    Message,
    PermanentDeliveryError,
    SendReceipt,
    TransientDeliveryError,
    redactor,
)

__all__ = [
    "AppriseChannel",
    "AppriseOptions",
    "AppriseOutcome",
    "AppriseRunner",
    "caller_overrides",
    "classify",
    "parse_apprise_url",
    "privacy_url",
    "scrub",
    "secrets_of",
]

#: most threads one plugin instance runs Apprise calls on at once
DEFAULT_MAX_WORKERS = 64

_HTTP_STATUS = re.compile(r"\berror=(\d{3,5})\b")
_CONNECTION_TROUBLE = re.compile(
    r"connection error|connection refused|timed out|timeout|socket|temporar", re.IGNORECASE
)
_SMTP_REFUSED = re.compile(r"was refused: ([45])\d\d\b")
_TRANSIENT_STATUSES = frozenset({408, 425, 429})


def _asset(timeout: float) -> AppriseAsset:
    # memory storage: Apprise must not write caches or keys to the gateway's disk
    return AppriseAsset(storage_mode=PersistentStoreMode.MEMORY, service_timeout=timeout)


def parse_apprise_url(url: str, *, what: str = "Apprise URL") -> apprise.NotifyBase:
    """The Apprise service for ``url``, or ``ValueError`` saying what is wrong (secrets hidden)."""
    shown = _scheme_only(url)
    try:
        service = apprise.Apprise.instantiate(url, asset=_asset(30.0), suppress_exceptions=False)
    except Exception as exc:  # noqa: BLE001 - any constructor error of a plugin means a bad URL
        raise ValueError(
            f"{what} {shown} is not usable: {scrub(str(exc), secrets_of(url))}"
        ) from None
    if service is None:
        raise ValueError(
            f"{what} {shown} is not a URL Apprise can parse "
            "(unknown scheme or malformed; see https://appriseit.com/services/)"
        )
    return service


def caller_overrides(url: str) -> list[str]:
    """The parts of an Apprise URL's query that choose the HTTP method, headers, query
    parameters or body fields (``method=``, ``+Header=``, ``-param=``, ``:field=``)."""
    query = url.partition("?")[2].partition("#")[0]
    parsed = parse_qsd(query)  # type: ignore[no-untyped-call] # apprise: untyped
    found = [f"method={parsed['qsd']['method']}"] if "method" in parsed["qsd"] else []
    for prefix in ("+", "-", ":"):
        found.extend(f"{prefix}{key}" for key in parsed[f"qsd{prefix}"])
    return found


def _scheme_only(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://…" if sep else "(no scheme://)"


def privacy_url(url: str) -> str:
    """``url`` as Apprise shows it with secrets masked; the scheme only if it does not parse."""
    try:
        service = apprise.Apprise.instantiate(url, asset=_asset(30.0))
    except Exception:  # noqa: BLE001 - redaction must never fail
        service = None
    if service is None:
        return _scheme_only(url)
    return _privacy(service)


def _privacy(service: apprise.NotifyBase) -> str:
    return str(service.url(privacy=True))  # type: ignore[no-untyped-call] # apprise: untyped


def secrets_of(url: str, *extra: str | None) -> tuple[str, ...]:
    """The parts of ``url`` that Apprise's privacy URL hides (tokens, passwords), plus ``extra``.

    Used to scrub provider messages before they reach an error, a receipt or a log.
    """
    found = {s for s in extra if s}
    try:
        service = apprise.Apprise.instantiate(url, asset=_asset(30.0))
    except Exception:  # noqa: BLE001 - fall back to treating every long part as secret
        service = None
    shown = unquote(_privacy(service)) if service is not None else ""
    for part in re.split(r"[/:@?&=#,;+\s]+", unquote(url)):
        if len(part) >= 4 and part not in shown:
            found.add(part)
    return tuple(sorted(found, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (as written or URL-encoded) replaced by ``[redacted]``."""
    return redactor(secrets)(text)


@dataclass(frozen=True)
class AppriseOutcome:
    """What one Apprise call did, reduced to what classification needs (no secrets)."""

    status: AppriseResultStatus
    service: str
    messages: tuple[str, ...] = ()


def _load_services() -> None:
    NotificationManager().load_modules()  # once per process; the manager locks it


def _notify_blocking(
    url: str, *, title: str, body: str, body_format: str, timeout: float,
    secrets: Sequence[str],
) -> AppriseOutcome:
    apobj = apprise.Apprise(asset=_asset(timeout))
    if not apobj.add(url):
        return AppriseOutcome(AppriseResultStatus.NOMATCH, "apprise", ("URL not accepted",))
    with apobj.notify(body=body, title=title, body_format=body_format, timeout=timeout) as result:
        if not result.results:
            msgs = tuple(scrub(e.message, secrets) for e in result.logs())
            return AppriseOutcome(result.status, "apprise", msgs)
        service = result.results[0]
        # the last attempt decides, whatever ``?optional=yes`` says about the service
        last = service.attempts[-1] if service.attempts else None
        status = last.status if last is not None else service.status
        logs = list(last.logs) if last is not None else list(result.logs())
        msgs = tuple(scrub(e.message, secrets) for e in logs)
        return AppriseOutcome(status, str(service.name), msgs)


def classify(outcome: AppriseOutcome, *, what: str, timeout: float) -> SendReceipt:
    """A receipt for a success, else the delivery error (see the module docstring)."""
    if outcome.status == AppriseResultStatus.SUCCESS:
        return SendReceipt(detail=f"accepted by {outcome.service}")
    said = "; ".join(m for m in outcome.messages if m)[-400:] or "no detail"
    if outcome.status == AppriseResultStatus.TIMEOUT:
        raise TransientDeliveryError(
            f"{what}: {outcome.service} did not finish within {timeout:g}s ({said})"
        )
    if outcome.status == AppriseResultStatus.NOMATCH:
        raise PermanentDeliveryError(f"{what}: Apprise could not load the service ({said})")
    codes = [int(m) for text in outcome.messages for m in _HTTP_STATUS.findall(text)]
    status = _http_status(codes[-1]) if codes else None
    if status is not None:
        transient = status in _TRANSIENT_STATUSES or status >= 500
        if transient or 400 <= status < 500:
            err = TransientDeliveryError if transient else PermanentDeliveryError
            kind = "transient" if transient else "permanent"
            raise err(f"{what}: {outcome.service} answered HTTP {status} ({kind}): {said}",
                      status=status)
    if codes:  # the provider answered with its own error code: it refused the message
        raise PermanentDeliveryError(f"{what}: {outcome.service} refused the message: {said}")
    smtp = [m for text in outcome.messages for m in _SMTP_REFUSED.findall(text)]
    if smtp and smtp[-1] == "5":
        raise PermanentDeliveryError(f"{what}: {outcome.service} refused the recipient: {said}")
    if any(_CONNECTION_TROUBLE.search(text) for text in outcome.messages):
        raise TransientDeliveryError(f"{what}: {outcome.service} could not connect: {said}")
    raise TransientDeliveryError(f"{what}: {outcome.service} failed: {said}")


def _http_status(code: int) -> int | None:
    if 100 <= code <= 599:
        return code
    if 20_100 <= code <= 20_599:  # Twilio's codes for HTTP-level errors: 20429, 20500, 20503
        return code - 20_000
    return None


class AppriseRunner:
    """Runs Apprise calls on a bounded pool of worker threads, created on first use."""

    def __init__(self, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None

    async def notify(
        self, url: str, *, title: str, body: str, what: str, time_limit: float,
        body_format: str = NotifyFormat.TEXT, secrets: Sequence[str] = (),
    ) -> SendReceipt:
        """Deliver through the Apprise service of ``url`` or raise a delivery error.

        ``time_limit`` bounds the whole call in seconds (Apprise's service timeout: it reports
        TIMEOUT after it): the message's ``send_timeout``, below the attempt timeout;
        ``what`` (e.g. ``"email to j***@example.com"``) starts every error message; ``secrets``
        are scrubbed from what Apprise said.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="apprise")
        loop = asyncio.get_running_loop()
        # the caller's context (its egress policy) goes with the call into the worker thread
        context = contextvars.copy_context()
        try:
            # a deadline from here too: a call queued for a free thread starts Apprise's late
            async with asyncio.timeout(time_limit):
                outcome = await loop.run_in_executor(
                    self._executor,
                    lambda: context.run(
                        _notify_blocking, url, title=title, body=body, body_format=body_format,
                        timeout=time_limit, secrets=secrets),
                )
        except TimeoutError:
            raise TransientDeliveryError(
                f"{what}: did not finish within {time_limit:g}s (waited for Apprise)") from None
        return classify(outcome, what=what, timeout=time_limit)

    async def warm(self) -> None:
        """Load Apprise's services now, in a worker thread: Apprise loads them all (about a
        second of imports here) in the first call of the process, which would otherwise be a
        delivery's, counted against its time limit."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="apprise")
        await asyncio.get_running_loop().run_in_executor(self._executor, _load_services)

    def shutdown(self) -> None:
        """Stop the worker threads; calls still running finish on their own."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class AppriseOptions(BaseModel):
    """Options of the ``apprise`` channel."""

    model_config = ConfigDict(extra="forbid")

    body_format: Literal["text", "markdown", "html"] = Field(
        "text", description="what the service gets: the text, the text as markdown, or the HTML"
    )


class AppriseChannel(Channel[AppriseOptions]):
    """Any Apprise URL as the target (``apprise:discord://webhook_id/token``)."""

    name: ClassVar[str] = "apprise"
    Options: ClassVar[type[BaseModel]] = AppriseOptions
    template_kind: ClassVar[str] = "text"
    subscriber_options: ClassVar[frozenset[str]] = frozenset({"timeout", "body_format"})

    def __init__(self) -> None:
        self._runner = AppriseRunner()

    def validate_target(self, target: str, options: AppriseOptions) -> str:
        parse_apprise_url(target.strip())
        return target.strip()

    def validate_untrusted(self, target: str, options: AppriseOptions) -> None:
        overrides = caller_overrides(target)
        if overrides:
            raise ValueError(
                f"{privacy_url(target)} sets {', '.join(overrides)}: the HTTP method, headers, "
                "query parameters and body fields of an Apprise URL are the operator's to choose "
                "(in the YAML file)")

    def target_hosts(self, target: str, options: AppriseOptions) -> list[str]:
        host = getattr(parse_apprise_url(target), "host", None)
        return [host] if isinstance(host, str) and host else []

    def redact_target(self, target: str) -> str:
        return privacy_url(target)

    async def send(self, message: Message, options: AppriseOptions) -> SendReceipt:
        body = message.text
        if options.body_format == "html" and message.html:
            body = message.html
        return await self._runner.notify(
            message.target, title=message.subject, body=body, body_format=options.body_format,
            time_limit=message.send_timeout,
            what=f"apprise to {self.redact_target(message.target)}",
            secrets=secrets_of(message.target),
        )

    async def aopen(self) -> None:
        await self._runner.warm()

    async def aclose(self) -> None:
        self._runner.shutdown()
