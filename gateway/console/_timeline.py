"""A task's timeline, as the console shows it: pure, from its status (no I/O).

Submitted, the agent's run, its result or error, then one card per subscriber: waiting,
every attempt (time, channel, provider status, error; a fallback's attempts marked), and
delivered or failed. Failures come first in the summary and are marked on every line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gateway.core import DeliveryReceipt, DeliveryState, TaskState, TaskStatus

__all__ = ["Step", "SubscriberCard", "Timeline", "build_timeline", "clock", "tone_of_delivery",
           "tone_of_task"]

_OUTPUT_CHARS = 4000


def clock(at: float | None) -> str:
    """``2026-11-27 18:02:03Z`` (UTC), or an empty string."""
    if at is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def _after(at: float | None, start: float | None) -> str:
    if at is None or start is None:
        return ""
    seconds = max(at - start, 0.0)
    return f"+{seconds:.1f}s" if seconds < 120 else f"+{seconds / 60:.1f}m"


def tone_of_task(state: TaskState) -> str:
    return {TaskState.SUCCEEDED: "ok", TaskState.FAILED: "bad",
            TaskState.RUNNING: "busy"}.get(state, "idle")


def tone_of_delivery(state: DeliveryState) -> str:
    if state in (DeliveryState.DELIVERED, DeliveryState.DELIVERED_BY_FALLBACK):
        return "ok"
    if state in (DeliveryState.FAILED, DeliveryState.REJECTED):
        return "bad"
    if state is DeliveryState.RETRYING:
        return "warn"
    if state is DeliveryState.DELIVERING:
        return "busy"
    return "idle"


@dataclass(frozen=True)
class Step:
    """One line of a timeline."""

    at: str
    after: str
    title: str
    tone: str
    detail: str = ""
    channel: str = ""
    status: str = ""
    fallback: bool = False


@dataclass(frozen=True)
class SubscriberCard:
    subscription_id: str
    channel: str
    target: str
    state: str
    tone: str
    steps: list[Step]
    error: str | None
    message_id: str | None
    invocation_id: str | None
    cancellable: bool
    failed: bool


@dataclass(frozen=True)
class Timeline:
    task_id: str
    state: str
    tone: str
    agent: str | None
    labels: dict[str, str]
    steps: list[Step]
    output: str | None
    error: str | None
    subscribers: list[SubscriberCard] = field(default_factory=list)
    failed: int = 0
    delivered: int = 0
    waiting: int = 0
    #: nothing will change any more: the task finished and every delivery is final
    settled: bool = False


def _attempt_steps(receipt: DeliveryReceipt, start: float | None) -> list[Step]:
    steps = []
    for attempt in receipt.history:
        fallback = attempt.channel != receipt.channel
        ok = attempt.outcome == "delivered"
        title = (f"attempt {attempt.number}: {attempt.outcome}" if attempt.number
                 else f"{attempt.channel}: not sent")
        steps.append(Step(at=clock(attempt.at), after=_after(attempt.at, start), title=title,
                          tone="ok" if ok else "bad", detail=attempt.error or "",
                          channel=attempt.channel, fallback=fallback,
                          status="" if attempt.provider_status is None
                          else f"HTTP {attempt.provider_status}"))
    return steps


def _card(receipt: DeliveryReceipt, start: float | None, full_targets: bool) -> SubscriberCard:
    steps = [Step(at=clock(receipt.created_at), after=_after(receipt.created_at, start),
                  title="subscribed: waiting for the outcome", tone="idle")]
    steps += _attempt_steps(receipt, start)
    state = receipt.state
    tone = tone_of_delivery(state)
    if state is DeliveryState.RETRYING and receipt.next_attempt_at:
        steps.append(Step(at=clock(receipt.next_attempt_at), after="", tone="warn",
                          title=f"retrying: attempt {receipt.attempts + 1} due"))
    elif state in (DeliveryState.DELIVERED, DeliveryState.DELIVERED_BY_FALLBACK):
        via = receipt.channel_used or receipt.channel
        steps.append(Step(at=clock(receipt.delivered_at), tone="ok",
                          after=_after(receipt.delivered_at, start),
                          title=f"delivered by {via}"
                                + (" (fallback)" if via != receipt.channel else "")))
    elif state.final:
        said = receipt.history[-1].error if receipt.history else None
        detail = "" if receipt.last_error == said else receipt.last_error or ""
        steps.append(Step(at=clock(receipt.updated_at), after=_after(receipt.updated_at, start),
                          title=state.value, tone=tone, detail=detail))
    target = receipt.address if full_targets and receipt.address else receipt.target
    return SubscriberCard(
        subscription_id=receipt.subscription_id, channel=receipt.channel, target=target,
        state=state.value, tone=tone, steps=steps, error=receipt.last_error,
        message_id=receipt.message_id, invocation_id=receipt.invocation_id,
        cancellable=not state.final and state is not DeliveryState.DELIVERING,
        failed=tone == "bad")


def build_timeline(status: TaskStatus, *, full_targets: bool) -> Timeline:
    """The timeline of a task; ``full_targets``: addresses unmasked (less any secret)."""
    start = status.submitted_at
    steps = [Step(at=clock(start), after="", tone="idle",
                  title=f"submitted to agent {status.agent or '?'}")] if start else []
    if status.state is TaskState.RUNNING:
        steps.append(Step(at=clock(start), after="", tone="busy", title="agent running"))
    elif status.state is TaskState.SUCCEEDED:
        steps.append(Step(at=clock(status.completed_at), tone="ok", title="agent succeeded",
                          after=_after(status.completed_at, start)))
    elif status.state is TaskState.FAILED:
        steps.append(Step(at=clock(status.completed_at), tone="bad", title="agent failed",
                          after=_after(status.completed_at, start),
                          detail=status.error or ""))
    cards = [_card(r, start, full_targets) for r in status.deliveries]
    cards.sort(key=lambda c: not c.failed)  # failures first
    output = status.output
    if output is not None and len(output) > _OUTPUT_CHARS:
        output = output[:_OUTPUT_CHARS] + " ..."
    finished = status.state in (TaskState.SUCCEEDED, TaskState.FAILED)
    return Timeline(
        task_id=status.task_id, state=status.state.value, tone=tone_of_task(status.state),
        agent=status.agent, labels=status.labels, steps=steps, output=output,
        error=status.error, subscribers=cards,
        failed=sum(c.tone == "bad" for c in cards),
        delivered=sum(c.tone == "ok" for c in cards),
        waiting=sum(c.tone in ("idle", "busy", "warn") and c.state != "cancelled"
                    and c.state != "skipped" for c in cards),
        settled=finished and all(r.state.final for r in status.deliveries))
