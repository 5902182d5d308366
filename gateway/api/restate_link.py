"""The front door's link to Restate: its ingress (handlers) and admin API (readiness, metrics).

The ingress may be several URLs (the nodes of a cluster): see :mod:`gateway.durable.ingress_urls`.

One ``httpx.AsyncClient`` per process with a large pool, made on first use inside the serving
event loop and closed by :meth:`RestateLink.aclose`; never a client per request.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.api._trace import inject
from gateway.core import DeliveryReceipt, Subscription, TaskStatus
from gateway.durable.ingress import (
    SERVICE,
    HandlerRefused,
    Ingress,
    IngressCall,
    RestateFailed,
    answer,
    message,
)
from gateway.durable.redrive_check import REDRIVE_HANDLER, redrive_refusal
from gateway.observability.metrics import SUBSCRIPTIONS_WAITING

__all__ = ["HandlerRefused", "RestateFailed", "RestateLink", "Started"]

log = logging.getLogger("gateway.api")

RECEIPTS = "TaskDeliveries"


@dataclass(frozen=True)
class Started:
    task_id: str
    #: False when the workflow with this key had been started before (it runs once)
    new: bool


class RestateLink:
    """Calls the gateway's handlers through the Restate ingress, and the admin API."""

    def __init__(self, ingress_url: str, admin_url: str, *, timeout: float = 30.0) -> None:
        self._ingress = Ingress(ingress_url)  # one URL, or several separated by commas
        self.ingress = self._ingress.urls
        self.ingress_url = str(self.ingress)
        self.admin_url = admin_url.rstrip("/")
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=512, max_keepalive_connections=512),
                timeout=httpx.Timeout(self._timeout, pool=60.0),
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _request(self, method: str, url: str, body: bytes | None = None,
                       accept: str | None = None,
                       idempotency_key: str | None = None) -> httpx.Response:
        """A request to the admin API."""
        headers = {"content-type": "application/json"} if body else {}
        if accept:
            headers["accept"] = accept
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        try:
            return await self.client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RestateFailed(f"Restate at {self.admin_url} is not reachable "
                                f"({type(exc).__name__})", reachable=False) from None

    async def _ingress_request(self, call: IngressCall) -> httpx.Response:
        return await self._ingress.send(self.client, call)

    def _handler(self, key: str, handler: str, body: bytes | None, *, send: bool = False,
                 service: str = SERVICE, idempotency_key: str | None = None) -> IngressCall:
        traceparent: dict[str, str] = {}
        inject(traceparent, key, handler)  # the task's trace, also when this process does
        # not trace: Restate's spans of the call join it
        return IngressCall.handler(key, handler, body, send=send, service=service,
                                   idempotency_key=idempotency_key, traceparent=traceparent)

    async def _call(self, service: str, key: str, handler: str, body: bytes | None,
                    *, send: bool = False) -> Any:
        call = self._handler(key, handler, body, send=send, service=service)
        return answer(await self._ingress_request(call), call.what)

    async def start(self, task_id: str, request_json: bytes) -> Started:
        """Send ``run`` (without waiting for it); a key started before is not started again."""
        data = await self._call(SERVICE, task_id, "run", request_json, send=True)
        return Started(task_id, new=str(data.get("status", "")) != "PreviouslyAccepted")

    async def add_subscribers(self, task_id: str, subs: list[Subscription]) -> int:
        """Subscribe those of ``subs`` the task does not have yet (a repeat submit); how many."""
        body = json.dumps([s.model_dump(mode="json", exclude_defaults=True) for s in subs])
        result = await self._call(SERVICE, task_id, "add_subscribers", body.encode())
        return len(result["added"])

    async def subscribe(self, task_id: str, subscriber_json: bytes) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(SERVICE, task_id, "subscribe", subscriber_json)
        return result

    async def status(self, task_id: str) -> TaskStatus:
        return TaskStatus.model_validate(await self._call(SERVICE, task_id, "status", None))

    async def exists(self, task_id: str) -> bool:
        """Whether a task with this id was ever started (and is within its retention): its
        workflow output is there, or not there yet (HTTP 470)."""
        r = await self._ingress_request(IngressCall.workflow_output(task_id))
        if r.status_code in (200, 470) or _source(r) == "invocation":  # done, running, failed
            return True
        if r.status_code == 404:
            return False
        raise RestateFailed(f"the workflow output of a task answered HTTP {r.status_code}: "
                            f"{message(r)}", status=r.status_code)

    async def cancel(self, task_id: str, seen: DeliveryReceipt) -> DeliveryReceipt:
        """Cancel a subscription (``seen``: its receipt, not final) in one durable step; the
        receipt it came to: cancelled (nothing is sent afterwards), or final already."""
        data = await self._call(SERVICE, task_id, "cancel", seen.model_dump_json().encode())
        return DeliveryReceipt.model_validate(data)

    async def redrive(self, task_id: str, subscription_id: str) -> DeliveryReceipt:
        """Start a new attempt chain of a failed subscription (the same message id); its
        receipt, now retrying. HandlerRefused 404: no such subscription; 409: not failed."""
        refusal = redrive_refusal(await self.status(task_id), subscription_id)
        if refusal is not None:
            raise HandlerRefused(refusal[1], refusal[0])
        body = json.dumps({"subscription_id": subscription_id}).encode()
        data = await self._call(RECEIPTS, task_id, REDRIVE_HANDLER, body)
        return DeliveryReceipt.model_validate(data)

    async def refresh_metrics(self) -> None:
        """Update the scrape-time gauges: subscriptions whose ``on_notify`` has not finished
        (NaN when the admin API does not answer)."""
        query = ("SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = "
                 f"'{SERVICE}' AND target_handler_name = 'on_notify' AND status != 'completed'")
        try:
            r = await self._request("POST", f"{self.admin_url}/query",
                                    json.dumps({"query": query}).encode(),
                                    accept="application/json")
            rows = r.json().get("rows", []) if r.status_code == 200 else None
        except (RestateFailed, ValueError):
            rows = None
        SUBSCRIPTIONS_WAITING.set(float(rows[0]["n"]) if rows else float("nan"))

    async def readiness(self) -> str | None:
        """Why the gateway is not ready (None: the Restate ingress and admin API answer).

        Deliberately not whether the service is registered: registration needs a ready pod
        (a Kubernetes Service routes only to ready pods, the Restate operator registers a
        version once its pods are ready), so waiting on it here would never end."""
        reason = await self._not_ready()
        if reason is not None:  # the log names Restate's URLs, the answer does not
            log.warning("not ready: %s (Restate ingress %s, admin API %s)", reason[1],
                        self.ingress_url, self.admin_url)
            return reason[0]
        return None

    async def _not_ready(self) -> tuple[str, str] | None:
        """(why, for the caller; why, for the log) or None."""
        try:
            health = await self._ingress_request(IngressCall("GET", "/restate/health"))
            admin = await self._request("GET", f"{self.admin_url}/health")
        except RestateFailed as exc:
            return "Restate is not reachable", str(exc)
        if health.status_code != 200:
            why = f"the Restate ingress answered HTTP {health.status_code} to its health check"
            return why, why
        if admin.status_code != 200:
            why = f"the Restate admin API answered HTTP {admin.status_code} to its health check"
            return why, why
        return None


def _source(r: httpx.Response) -> str | None:
    """Who answered an ingress error: ``ingress`` itself, or the ``invocation``."""
    try:
        data = r.json()
    except ValueError:
        return None
    return str(data.get("source")) if isinstance(data, dict) else None
