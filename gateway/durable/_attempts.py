"""One delivery attempt: the journaled step, its outcome, its metrics, logs and span.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from pydantic import BaseModel

from gateway.core import (
    PermanentDeliveryError,
    TransientDeliveryError,
    redactor,
    secret_values,
)
from gateway.durable import _task_log
from gateway.durable.runtime import Runtime
from gateway.observability import metrics as _metrics
from gateway.observability import trace as _trace

# --- on_notify -----------------------------------------------------------------------------


class AttemptOutcome(BaseModel):
    """One journaled delivery attempt."""

    ok: bool
    at: float
    permanent: bool = False
    error: str | None = None
    provider_status: int | None = None
    retry_after: float | None = None


def message_id(task_id: str, subscription_id: str, kind: str) -> str:
    digest = hashlib.sha256(f"{task_id}\x00{subscription_id}\x00{kind}".encode()).hexdigest()
    return "msg_" + digest[:32]


class Attempt:
    """The journaled step of delivery attempt number ``n`` of a message on one channel."""

    def __init__(self, rt: Runtime, channel: Any, message: Any, options: Any, timeout: float,
                 channel_name: str, message_id: str, span: _trace.HandlerTrace | None,
                 result_at: float | None) -> None:
        self.rt, self.channel, self.options = rt, channel, options
        # the plugin sets its library's timeouts from the attempt's limit (Message.time_limit)
        self.message = message.model_copy(update={"time_limit": timeout})
        self.timeout = timeout
        self.channel_name, self.message_id = channel_name, message_id
        self.span, self.result_at = span, result_at

    async def run(self, n: int) -> AttemptOutcome:
        with _trace.delivery(self.span, self.channel_name, n, self.message_id) as span:
            observe = _AttemptObserver(span, self.channel_name, self.result_at, n)
            return await _attempt_once(self.rt, self.channel, self.message, self.options,
                                       self.timeout, observe)


class _AttemptObserver:
    """Counts one delivery attempt and describes it on its span (inside the journaled step:
    once per attempt, never on a replay)."""

    def __init__(self, span: Any, channel: str, result_at: float | None,
                 attempt: int = 0) -> None:
        self.span = span
        self.channel = channel
        self.result_at = result_at
        self.attempt = attempt
        self.started = time.time()

    def __call__(self, outcome_label: str, outcome: AttemptOutcome) -> None:
        _metrics.DELIVERY_ATTEMPTS.labels(self.channel, outcome_label).inc()
        latency = None
        if outcome.ok and self.result_at is not None:
            latency = max(0.0, outcome.at - self.result_at)
            _metrics.DELIVERY_LATENCY.labels(self.channel).observe(latency)
        _task_log.attempted(self.channel, self.attempt, outcome_label, outcome.provider_status,
                            outcome.at - self.started, latency)
        _trace.attempted(self.span, outcome_label, outcome.provider_status, outcome.error)


def _error_text(rt: Runtime, options: Any, exc: Exception) -> str:
    """The error, without the process's secrets nor those of this delivery's own options
    (a subscriber's webhook secret)."""
    return redactor(secret_values(options))(rt.redact(str(exc)))


async def _attempt_once(rt: Runtime, channel: Any, message: Any, options: Any,
                        timeout: float, observe: _AttemptObserver | None = None
                        ) -> AttemptOutcome:
    import time

    try:
        # in this task, so the plugin's own deadline (a little earlier) starts with this one
        async with asyncio.timeout(timeout):
            receipt = await channel.send(message, options)
    except TransientDeliveryError as exc:
        label, outcome = "transient", AttemptOutcome(
            ok=False, at=time.time(), error=_error_text(rt, options, exc),
            provider_status=exc.status,
            retry_after=exc.retry_after)
    except PermanentDeliveryError as exc:
        label, outcome = "permanent", AttemptOutcome(
            ok=False, at=time.time(), permanent=True, error=_error_text(rt, options, exc),
            provider_status=exc.status)
    except TimeoutError:
        label, outcome = "timeout", AttemptOutcome(
            ok=False, at=time.time(), error=f"no answer within {timeout:g}s (attempt timeout)")
    else:
        label, outcome = "delivered", AttemptOutcome(
            ok=True, at=time.time(), provider_status=receipt.provider_status)
    if observe is not None:
        observe(label, outcome)
    return outcome
