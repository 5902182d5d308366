"""The one thin client of Restate's ingress, used by the API (async) and the CLI (sync).

It builds a handler's URL (the key percent-encoded), its headers (JSON body, idempotency key,
the task's ``traceparent``), sends it to the first ingress URL that takes the connection
(see :mod:`gateway.durable.ingress_urls`) and says what the answer means: JSON, a handler's
refusal (4xx: :class:`HandlerRefused`) or Restate failing (:class:`RestateFailed`, with
``reachable`` False when no node answered). The HTTP client is the caller's: one per process,
bounded, never one per call.

Why not ``restate.client`` (restate-sdk): its send answer drops Restate's ``status`` (a repeat
``run`` of a workflow answers ``PreviouslyAccepted``, which the API turns into 200 instead of
201), it puts the key into the path without percent-encoding it, it takes one base URL (no
failover over the nodes of a cluster), it reads no workflow output (``exists``) and it is
async only, while the CLI is synchronous.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.durable.ingress_urls import CONNECT_ERRORS, IngressUrls, shown

__all__ = ["SERVICE", "HandlerRefused", "Ingress", "IngressCall", "RestateFailed", "answer"]

log = logging.getLogger("gateway.api")

SERVICE = "AsyncNotificationsAgent"


class RestateFailed(Exception):
    """Restate could not be reached, or answered what the gateway does not expect."""

    def __init__(self, message: str, *, status: int | None = None,
                 reachable: bool = True, last_error: str = "") -> None:
        super().__init__(message)
        #: Restate's HTTP status (None: no answer)
        self.status = status
        self.reachable = reachable
        #: the text of the last transport error (no answer)
        self.last_error = last_error


class HandlerRefused(Exception):
    """A handler refused its input (Restate answered 4xx); the message is the handler's."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def quoted_key(value: str) -> str:
    """``value`` percent-encoded as one path segment."""
    return httpx.URL("/" + value).raw_path.decode()[1:]


@dataclass(frozen=True)
class IngressCall:
    """One request to the ingress: ``path`` is appended to the ingress URL that takes it."""

    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: what it calls, for error messages: ``service/handler``
    what: str = ""

    @classmethod
    def handler(cls, key: str, handler: str, body: bytes | None, *, send: bool = False,
                service: str = SERVICE, idempotency_key: str | None = None,
                traceparent: dict[str, str] | None = None) -> IngressCall:
        kind = "send" if send else "call"
        headers = {"content-type": "application/json"} if body else {}
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        headers.update(traceparent or {})
        return cls("POST", f"/restate/{kind}/{service}/{quoted_key(key)}/{handler}", body,
                   headers, f"{service}/{handler}")

    @classmethod
    def workflow_output(cls, key: str, service: str = SERVICE) -> IngressCall:
        return cls("GET", f"/restate/workflow/{service}/{quoted_key(key)}/output",
                   what=f"{service} output")


class Ingress:
    """The ingress URLs, tried in order (a refused connection moves to the next one; a
    request that was sent and then failed is not repeated elsewhere)."""

    def __init__(self, spec: str, *, log_failover: bool = True) -> None:
        self.urls = IngressUrls(spec)
        #: log a warning when a URL refuses the connection (the CLI does not: its output)
        self.log_failover = log_failover

    def __str__(self) -> str:
        return str(self.urls)

    async def send(self, client: httpx.AsyncClient, call: IngressCall) -> httpx.Response:
        failed: list[httpx.HTTPError] = []
        for base in self.urls.in_order():
            try:
                r = await client.request(call.method, base + call.path, content=call.body,
                                         headers=call.headers)
            except CONNECT_ERRORS as exc:
                self._refused(base, exc, failed)
                continue
            except httpx.HTTPError as exc:  # sent, then failed: not repeated elsewhere
                raise _lost(base, exc) from None
            self.urls.answered(base)
            return r
        raise self._unreachable(failed)

    def send_sync(self, client: httpx.Client, call: IngressCall) -> httpx.Response:
        failed: list[httpx.HTTPError] = []
        for base in self.urls.in_order():
            try:
                r = client.request(call.method, base + call.path, content=call.body,
                                   headers=call.headers)
            except CONNECT_ERRORS as exc:
                self._refused(base, exc, failed)
                continue
            except httpx.HTTPError as exc:
                raise _lost(base, exc) from None
            self.urls.answered(base)
            return r
        raise self._unreachable(failed)

    def _refused(self, base: str, exc: httpx.HTTPError, failed: list[httpx.HTTPError]) -> None:
        failed.append(exc)
        if self.log_failover and len(self.urls.urls) > 1:
            log.warning("Restate ingress %s refused the connection (%s); trying the next one",
                        shown(base), type(exc).__name__)

    def _unreachable(self, failed: list[httpx.HTTPError]) -> RestateFailed:
        names = ", ".join(type(exc).__name__ for exc in failed)
        return RestateFailed(f"Restate at {self.urls} is not reachable ({names})",
                             reachable=False, last_error=str(failed[-1]) if failed else "")


def _lost(base: str, exc: httpx.HTTPError) -> RestateFailed:
    return RestateFailed(f"Restate at {shown(base)} is not reachable ({type(exc).__name__})",
                         reachable=False, last_error=str(exc))


def answer(r: httpx.Response, what: str) -> Any:
    """The JSON of a handler's answer; a 4xx is the handler's refusal, other failures are
    Restate's."""
    if 400 <= r.status_code < 500:
        raise HandlerRefused(message(r), r.status_code)
    if r.status_code >= 300:
        raise RestateFailed(f"{what} answered HTTP {r.status_code}: {message(r)}",
                            status=r.status_code)
    try:
        return r.json()
    except ValueError:
        raise RestateFailed(f"{what} answered no JSON", status=r.status_code) from None


def message(r: httpx.Response) -> str:
    """The message of an error answer (Restate's ``message`` field, else its text)."""
    try:
        data = r.json()
    except ValueError:
        return r.text.strip()[:500] or f"HTTP {r.status_code}"
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return r.text.strip()[:500]
