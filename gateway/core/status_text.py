"""How ``gateway status`` words a task and its deliveries (pure: no I/O).

The current state of a delivery comes first; earlier attempts are history and are said as
such ("delivered (attempt 2; attempt 1 failed: ...)"), never as the delivery's error.
"""

from __future__ import annotations

from gateway.core.models import AttemptRecord, DeliveryReceipt, DeliveryState, TaskState, TaskStatus

__all__ = ["delivery_state_text", "repeat_note", "task_state_text"]

_ERROR_MAX = 120


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def task_state_text(status: TaskStatus) -> str:
    """``succeeded``, ``running`` ... or, before the task runs, ``not started; 1 subscriber
    waiting`` (and how many were rejected)."""
    if status.state is not TaskState.NOT_STARTED:
        return status.state.value
    rejected = sum(d.state is DeliveryState.REJECTED for d in status.deliveries)
    waiting = len(status.deliveries) - rejected
    parts = ["not started"]
    if waiting:
        parts.append(f"{_plural(waiting, 'subscriber')} waiting")
    if rejected:
        parts.append(f"{_plural(rejected, 'subscriber')} rejected")
    return "; ".join(parts)


def _short(error: str | None) -> str:
    lines = (error or "").strip().splitlines()
    text = lines[0] if lines else "unknown error"
    return text if len(text) <= _ERROR_MAX else text[:_ERROR_MAX - 3] + "..."


def _earlier(history: list[AttemptRecord]) -> list[str]:
    """Earlier failed attempts, runs with the same error said once: ``attempts 1-2 failed: X``."""
    out: list[str] = []
    run: list[AttemptRecord] = []

    def flush() -> None:
        if not run:
            return
        first, last = run[0], run[-1]
        verb = "not sent" if first.outcome == "not-sent" else "failed"
        if first.number == 0:
            out.append(f"{first.channel} {verb}: {_short(first.error)}")
        elif len(run) == 1:
            out.append(f"attempt {first.number} {verb}: {_short(first.error)}")
        else:
            out.append(f"attempts {first.number}-{last.number} {verb}: {_short(first.error)}")
        run.clear()

    for record in history:
        if record.outcome == "delivered":
            continue
        if run and (record.error != run[0].error or record.number == 0):
            flush()
        run.append(record)
    flush()
    return out


def delivery_state_text(d: DeliveryReceipt) -> str:
    """The state of one delivery, with its attempt history when there was more than one:
    ``delivered (attempt 2; attempt 1 failed: webhook: HTTP 503)``."""
    state = d.state.value
    if d.state in (DeliveryState.DELIVERED, DeliveryState.DELIVERED_BY_FALLBACK):
        earlier = _earlier([r for r in d.history if r.outcome != "delivered"])
        if not earlier:
            return state
        return f"{state} (attempt {d.attempts}; {'; '.join(earlier)})"
    if d.state is DeliveryState.RETRYING and d.attempts:
        return f"{state} (after attempt {d.attempts})"
    return state


def repeat_note(added: int, given: int) -> str:
    """What a repeat submit did with the subscribers it named."""
    if not given:
        return ""
    if added:
        return f"; {_plural(added, 'new subscriber')} added"
    return "; no new subscribers (all were subscribed already)"
