"""Helpers of the API tests: ids, signed inbound deliveries, polling a task."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from tests.api.conftest import GITHUB_SECRET, HOOK_SECRET


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def standard_headers(body: bytes, webhook_id: str, *, secret: str = HOOK_SECRET,
                     timestamp: float | None = None) -> dict[str, str]:
    """Standard Webhooks headers of ``body``, signed with ``secret`` at ``timestamp``."""
    ts = int(time.time() if timestamp is None else timestamp)
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(ts, tz=UTC),
                                     body.decode())
    return {"webhook-id": webhook_id, "webhook-timestamp": str(ts),
            "webhook-signature": signature, "content-type": "application/json"}


def github_headers(body: bytes, delivery: str, *, secret: str = GITHUB_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": delivery,
            "content-type": "application/json"}


def body_of(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def poll(http: httpx.Client, task_id: str, done: Callable[[dict[str, Any]], bool],
         timeout: float = 30) -> dict[str, Any]:
    """GET the task until ``done`` says so (or the time is up); the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        r = http.get(f"/v1/tasks/{task_id}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        if done(data) or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


def finished(data: dict[str, Any]) -> bool:
    return data["state"] in ("succeeded", "failed") and all(
        d["state"] in ("delivered", "delivered-by-fallback", "failed", "cancelled", "skipped",
                       "rejected")
        for d in data["deliveries"])
