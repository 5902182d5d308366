"""A small client of the gateway's Restate ingress, used by the CLI, the demo and the tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.errors import EngineError, UserInputError
from gateway.models import DeliveryState, Subscription, TaskRequest, TaskState, TaskStatus

__all__ = ["GatewayClient", "Submitted"]

SERVICE = "AsyncNotificationsAgent"


@dataclass(frozen=True)
class Submitted:
    task_id: str
    invocation_id: str | None
    #: False when a task with this id had been submitted before (it runs once)
    new: bool


class GatewayClient:
    """Talks to a Restate ingress that serves the gateway."""

    def __init__(self, ingress_url: str, *, timeout: float = 30.0,
                 client: httpx.Client | None = None) -> None:
        self.ingress_url = ingress_url.rstrip("/")
        self._http = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, task_id: str, handler: str, *, send: bool = False) -> str:
        quoted = httpx.URL(f"/{task_id}").raw_path.decode()[1:]  # percent-encode the key
        kind = "send" if send else "call"
        return f"{self.ingress_url}/restate/{kind}/{SERVICE}/{quoted}/{handler}"

    def _post(self, url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            content_type = {"content-type": "application/json"} if body else {}
            response = self._http.post(url, content=body, headers={**content_type, **(headers or {})})
        except httpx.HTTPError as exc:
            raise EngineError(
                f"cannot reach the Restate ingress at {self.ingress_url} ({exc}); is `gateway up` "
                "running? (or pass --ingress-url / set GATEWAY_RESTATE_INGRESS_URL)"
            ) from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def submit(self, task_id: str, request: TaskRequest) -> Submitted:
        body = request.model_dump_json(exclude_defaults=True).encode()
        r = self._post(self._url(task_id, "run", send=True), body)
        data = r.json()
        status = str(data.get("status", ""))
        return Submitted(task_id, data.get("invocationId"), new=status != "PreviouslyAccepted")

    def subscribe(self, task_id: str, subscriber: Subscription | str) -> dict[str, Any]:
        body = json.dumps(
            subscriber if isinstance(subscriber, str)
            else subscriber.model_dump(mode="json", exclude_defaults=True)
        ).encode()
        result: dict[str, Any] = self._post(self._url(task_id, "subscribe"), body).json()
        return result

    def status(self, task_id: str) -> TaskStatus:
        r = self._post(self._url(task_id, "status"), b"")
        return TaskStatus.model_validate(r.json())

    def wait(self, task_id: str, timeout: float, *, deliveries: bool = True,
             poll: float = 0.2) -> TaskStatus:
        """Poll until the task has finished and (with ``deliveries``) every delivery is final."""
        deadline = time.monotonic() + timeout
        status = self.status(task_id)
        while time.monotonic() < deadline:
            finished = status.state in (TaskState.SUCCEEDED, TaskState.FAILED)
            if finished and (not deliveries or all(d.state.final for d in status.deliveries)):
                return status
            time.sleep(poll)
            status = self.status(task_id)
        return status


def _error_from(response: httpx.Response) -> Exception:
    try:
        message = str(response.json().get("message", response.text))
    except ValueError:
        message = response.text
    message = message.strip() or f"HTTP {response.status_code}"
    if 400 <= response.status_code < 500:
        return UserInputError(message)
    return EngineError(f"the gateway answered HTTP {response.status_code}: {message}")


FINAL = {s for s in DeliveryState if s.final}
