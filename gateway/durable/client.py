"""Small clients of the gateway, used by the CLI, the demo and the tests: ``GatewayClient``
talks to the Restate ingress (no authentication: a private network), ``ApiClient`` to the
gateway's HTTP API with an API key. Both have ``submit``, ``subscribe``, ``status``, ``wait``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from gateway.core import (
    DeliveryReceipt,
    DeliveryState,
    EngineError,
    Subscription,
    TaskRequest,
    TaskState,
    TaskStatus,
    UserInputError,
)
from gateway.durable.ingress import Ingress, IngressCall, RestateFailed
from gateway.durable.redrive_check import REDRIVE_HANDLER, redrive_refusal
from gateway.observability.trace import TRACEPARENT, task_traceparent

__all__ = ["ApiClient", "GatewayClient", "Submitted"]


@dataclass(frozen=True)
class Submitted:
    task_id: str
    invocation_id: str | None
    #: False when a task with this id had been submitted before (it runs once)
    new: bool
    #: subscribers this submit added (a repeat adds those the task did not have yet)
    added: int = 0


class GatewayClient:
    """Talks to a Restate ingress that serves the gateway (several URLs, comma-separated: the
    next one is tried when a connection cannot be made; see :mod:`gateway.durable.ingress`)."""

    def __init__(self, ingress_url: str, *, timeout: float = 30.0,
                 client: httpx.Client | None = None) -> None:
        self._ingress = Ingress(ingress_url, log_failover=False)
        self.ingress_url = str(self._ingress)
        self._http = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, task_id: str, handler: str, body: bytes, *,
              send: bool = False) -> httpx.Response:
        call = IngressCall.handler(task_id, handler, body, send=send,
                                   traceparent=_traced(task_id, handler))
        try:
            response = self._ingress.send_sync(self._http, call)
        except RestateFailed as exc:
            raise EngineError(
                f"cannot reach the Restate ingress at {self.ingress_url} ({exc.last_error}); is "
                "`gateway up` running? (or pass --ingress-url / set "
                "GATEWAY_RESTATE_INGRESS_URL)") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def submit(self, task_id: str, request: TaskRequest) -> Submitted:
        body = request.model_dump_json(exclude_defaults=True).encode()
        r = self._post(task_id, "run", body, send=True)
        data = r.json()
        new = str(data.get("status", "")) != "PreviouslyAccepted"
        added = len(request.subscriptions)
        if not new and request.subscriptions:  # a repeat: its new subscribers join
            subs = json.dumps([s.model_dump(mode="json", exclude_defaults=True)
                               for s in request.subscriptions]).encode()
            added = len(self._post(task_id, "add_subscribers", subs).json()["added"])
        return Submitted(task_id, data.get("invocationId"), new=new, added=added)

    def subscribe(self, task_id: str, subscriber: Subscription | str) -> dict[str, Any]:
        body = json.dumps(
            subscriber if isinstance(subscriber, str)
            else subscriber.model_dump(mode="json", exclude_defaults=True)
        ).encode()
        result: dict[str, Any] = self._post(task_id, "subscribe", body).json()
        return result

    def status(self, task_id: str) -> TaskStatus:
        r = self._post(task_id, "status", b"")
        return TaskStatus.model_validate(r.json())

    def cancel(self, task_id: str, subscription_id: str) -> DeliveryReceipt:
        """Cancel a subscription still waiting, in one durable step (the workflow's ``cancel``
        handler); its receipt. UserInputError: unknown, or already final (says which)."""
        found = next((r for r in self.status(task_id).deliveries
                      if r.subscription_id == subscription_id), None)
        if found is None:
            raise UserInputError(f"task {task_id!r} has no subscription {subscription_id!r}")
        if found.state is not DeliveryState.CANCELLED:
            _cancellable(found)
            found = DeliveryReceipt.model_validate(
                self._post(task_id, "cancel", found.model_dump_json().encode()).json())
            _cancellable(found)
        return found

    def redrive(self, task_id: str, subscription_id: str) -> DeliveryReceipt:
        """Deliver a failed subscription again (the same message id); its receipt, now
        retrying. UserInputError: unknown, or not failed (the reason says which)."""
        refusal = redrive_refusal(self.status(task_id), subscription_id)
        if refusal is not None:
            raise UserInputError(refusal[1])
        call = IngressCall.handler(task_id, REDRIVE_HANDLER, json.dumps(
            {"subscription_id": subscription_id}).encode(), service=RECEIPTS_SERVICE,
            traceparent=_traced(task_id, REDRIVE_HANDLER))
        try:
            response = self._ingress.send_sync(self._http, call)
        except RestateFailed as exc:
            raise EngineError(f"cannot reach the Restate ingress at {self.ingress_url} "
                              f"({exc.last_error})") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return DeliveryReceipt.model_validate(response.json())

    def wait(self, task_id: str, timeout: float, *, deliveries: bool = True,
             poll: float = 0.2) -> TaskStatus:
        """Poll until the task has finished and (with ``deliveries``) every delivery is final."""
        return _wait(lambda: self.status(task_id), timeout, deliveries, poll)


#: the receipts object (see gateway.durable._receipts)
RECEIPTS_SERVICE = "TaskDeliveries"


def _traced(task_id: str, handler: str) -> dict[str, str]:
    """The task's own trace on an ingress call (see :func:`gateway._trace.task_traceparent`)."""
    return {TRACEPARENT: task_traceparent(task_id, handler)}


def _wait(status_of: Callable[[], TaskStatus], timeout: float, deliveries: bool,
          poll: float) -> TaskStatus:
    deadline = time.monotonic() + timeout
    status = status_of()
    while time.monotonic() < deadline:
        finished = status.state in (TaskState.SUCCEEDED, TaskState.FAILED)
        if finished and (not deliveries or all(d.state.final for d in status.deliveries)):
            return status
        time.sleep(poll)
        status = status_of()
    return status


class ApiClient:
    """Talks to the gateway's HTTP API (``gateway up``/``serve`` on :8000) with an API key."""

    def __init__(self, api_url: str, api_key: str | None, *, timeout: float = 30.0,
                 client: httpx.Client | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = client or httpx.Client(timeout=timeout)
        self._headers = headers

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None,
                 params: list[tuple[str, str]] | None = None) -> httpx.Response:
        try:
            response = self._http.request(method, f"{self.api_url}{path}", json=body,
                                          params=tuple(params or ()),
                                          headers={**self._headers, **(headers or {})})
        except httpx.HTTPError as exc:
            raise EngineError(
                f"cannot reach the gateway API at {self.api_url} ({type(exc).__name__}); is "
                "`gateway up` running? (or pass --api-url / set GATEWAY_API_URL)"
            ) from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    @staticmethod
    def _task(task_id: str) -> str:
        return f"/v1/tasks/{quote(task_id, safe='')}"

    def submit(self, task_id: str, request: TaskRequest) -> Submitted:
        body: dict[str, Any] = {"task_id": task_id, "prompt": request.prompt,
                                "agent": request.agent, "labels": request.labels,
                                "subscriptions": [_subscriber(s) for s in request.subscriptions]}
        data = self._request("POST", "/v1/tasks", body).json()
        return Submitted(str(data["task_id"]), None, new=bool(data["created"]),
                         added=int(data.get("subscriptions_added", 0)))

    def subscribe(self, task_id: str, subscriber: Subscription | str) -> dict[str, Any]:
        body = subscriber if isinstance(subscriber, str) else _subscriber(subscriber)
        result: dict[str, Any] = self._request(
            "POST", self._task(task_id) + "/subscriptions", body).json()
        return result

    def status(self, task_id: str) -> TaskStatus:
        try:
            r = self._request("GET", self._task(task_id))
        except _NotFound:
            return TaskStatus(task_id=task_id, state=TaskState.UNKNOWN)
        return TaskStatus.model_validate(r.json())

    def cancel(self, task_id: str, subscription_id: str) -> DeliveryReceipt:
        """Cancel a subscription still waiting; its receipt (409: already final)."""
        path = f"{self._task(task_id)}/subscriptions/{quote(subscription_id, safe='')}"
        return DeliveryReceipt.model_validate(self._request("DELETE", path).json())

    def redrive(self, task_id: str, subscription_id: str) -> DeliveryReceipt:
        """Deliver a failed subscription again (the same message id); its receipt."""
        path = f"{self._task(task_id)}/subscriptions/{quote(subscription_id, safe='')}/redrive"
        return DeliveryReceipt.model_validate(self._request("POST", path).json())

    def tasks(self, query: list[tuple[str, str]]) -> dict[str, Any]:
        """A page of recent tasks (``GET /v1/tasks``: state, agent, channel, label, limit,
        cursor), as the API answers it."""
        page: dict[str, Any] = self._request("GET", "/v1/tasks", params=query).json()
        return page

    def redrive_failed(self, channel: str, since: str,
                       target: str | None = None) -> dict[str, Any]:
        """Every delivery on ``channel`` (optionally to ``target``) that failed since ``since``
        (ISO 8601) sent again (``POST /v1/redrive``); what was redriven."""
        body = {"channel": channel, "since": since, **({"target": target} if target else {})}
        result: dict[str, Any] = self._request("POST", "/v1/redrive", body).json()
        return result

    def wait(self, task_id: str, timeout: float, *, deliveries: bool = True,
             poll: float = 0.2) -> TaskStatus:
        """Poll until the task has finished and (with ``deliveries``) every delivery is final."""
        return _wait(lambda: self.status(task_id), timeout, deliveries, poll)


def _cancellable(receipt: DeliveryReceipt) -> None:
    if receipt.state.final and receipt.state is not DeliveryState.CANCELLED:
        raise UserInputError(f"subscription {receipt.subscription_id} is already "
                             f"{receipt.state.value}: there is nothing to cancel")


def _subscriber(sub: Subscription) -> dict[str, Any]:
    """A subscription as the API takes it (no options: the API does not let callers set them)."""
    if sub.options or any(t.options for t in sub.fallback):
        raise UserInputError("the API takes no per-subscription channel options; configure "
                             "them on the channel instead")
    out = sub.model_dump(mode="json", exclude_defaults=True,
                         include={"channel", "target", "outcomes", "template"})
    if sub.fallback:
        out["fallback"] = [{"channel": t.channel, "target": t.target} for t in sub.fallback]
    return out


class _NotFound(UserInputError):
    """The API answered 404."""


def _error_from(response: httpx.Response) -> Exception:
    try:
        message = str(response.json().get("message", response.text))
    except ValueError:
        message = response.text
    message = message.strip() or f"HTTP {response.status_code}"
    if response.status_code == 404:
        return _NotFound(message)
    if 400 <= response.status_code < 500:
        return UserInputError(message)
    return EngineError(f"the gateway answered HTTP {response.status_code}: {message}")

