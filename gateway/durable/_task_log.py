"""The story of a task at ``info``: one line per state change and per delivery outcome.

A task logs ``task accepted``, ``agent started``, then ``task succeeded``, ``task failed`` or
``task timed out``; every delivery attempt logs ``delivery attempt`` (channel, attempt,
outcome, provider status, how long it took and, once delivered, the latency from the
task's result), and every subscription's end ``delivery finished`` with its final state. The
task, subscription and channel come from the handler's context (``gateway.observability``).

Lines are written where the work happens for the first time: never while Restate replays a
handler (the check here, and the SDK's filter on the handler of the logging chain), and a
delivery attempt's line inside its journaled step, which runs once per attempt.
"""

from __future__ import annotations

import logging

from gateway.observability import trace as _trace

__all__ = ["agent_started", "attempted", "delivery_finished", "task_accepted", "task_finished"]

_task = logging.getLogger("gateway.task")
_delivery = logging.getLogger("gateway.delivery")

#: the text by which the agent runner reports a run stopped by the agent's timeout
_TIMED_OUT = "did not finish within its timeout"


def _info(logger: logging.Logger, event: str, *, level: int = logging.INFO,
          **fields: object) -> None:
    if _trace.replaying() or not logger.isEnabledFor(level):
        return
    logger.log(level, event, extra={k: v for k, v in fields.items() if v is not None})


def task_accepted(agent: str, subscriptions: int, standing: int) -> None:
    _info(_task, "task accepted", agent=agent, subscriptions=subscriptions,
          standing_subscriptions=standing)


def agent_started(agent: str, model: str | None) -> None:
    _info(_task, "agent started", agent=agent, model=model)


def outcome_of_failure(error: str) -> str:
    """``timed_out`` for a run stopped by the agent's timeout, else ``failed``."""
    return "timed_out" if _TIMED_OUT in error else "failed"


def task_finished(agent: str, outcome: str, seconds: float, error: str | None = None) -> None:
    """``outcome``: ``succeeded``, ``failed`` or ``timed_out`` (a warning); ``error``:
    redacted already."""
    _info(_task, "task " + outcome.replace("_", " "),
          level=logging.INFO if outcome == "succeeded" else logging.WARNING, agent=agent,
          outcome=outcome, duration_s=round(max(0.0, seconds), 3), error=error)


def attempted(channel: str, attempt: int, outcome: str, provider_status: int | None,
              elapsed: float, latency: float | None) -> None:
    """One delivery attempt (inside its journaled step); one that failed is a warning."""
    _info(_delivery, "delivery attempt",
          level=logging.INFO if outcome == "delivered" else logging.WARNING,
          channel=channel, attempt=attempt, outcome=outcome,
          provider_status=provider_status, elapsed_ms=round(elapsed * 1000, 1),
          latency_s=round(latency, 3) if latency is not None else None)


def delivery_finished(channel: str, state: str, attempts: int, channel_used: str | None,
                      kind: str, provider_status: int | None,
                      latency: float | None = None) -> None:
    """A subscription's final state (delivered, delivered-by-fallback, failed, skipped,
    cancelled); ``latency``: from the task's result to the provider's acceptance."""
    _info(_delivery, "delivery finished", channel=channel, state=state, attempts=attempts,
          channel_used=channel_used, message_kind=kind, provider_status=provider_status,
          latency_s=round(latency, 3) if latency is not None else None)
