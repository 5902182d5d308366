"""Domain models: what a task is, who subscribes to it, what they get, what happened.

Everything that crosses the Restate boundary (handler inputs, the durable promise, receipts)
is one of these pydantic models, serialised as JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.core.names import CHANNEL_NAME, CHANNEL_NAME_RULE

__all__ = [
    "AttemptRecord",
    "DeliveryReceipt",
    "DeliveryState",
    "Outcome",
    "RetryPolicy",
    "Subscription",
    "Target",
    "Task",
    "TaskRequest",
    "TaskResult",
    "TaskState",
    "TaskStatus",
    "subscription_id",
]

_EMAIL = re.compile(r"^[^@\s:/]+@[^@\s:/]+\.[^@\s:/]+$")

Outcome = Literal["succeeded", "failed", "timed_out"]
_DEFAULT_OUTCOMES: tuple[Outcome, ...] = ("succeeded", "failed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryPolicy(_Strict):
    """How often and how fast a channel retries a transient failure before giving up."""

    max_attempts: int = Field(5, ge=1, le=100)
    initial_interval: float = Field(1.0, gt=0, description="seconds before the first retry")
    max_interval: float = Field(60.0, gt=0, description="upper bound of one wait, seconds")
    factor: float = Field(2.0, ge=1.0)
    attempt_timeout: float = Field(30.0, gt=0, description="seconds one attempt may take")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        backoff = min(self.initial_interval * self.factor ** (attempt - 1), self.max_interval)
        if retry_after is not None:
            return min(max(backoff, retry_after), max(self.max_interval, retry_after))
        return backoff


class Target(_Strict):
    """One place to deliver to: a channel, its target and per-subscription options."""

    channel: str
    target: str
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("channel")
    @classmethod
    def _channel_name(cls, v: str) -> str:
        if not CHANNEL_NAME.match(v):
            raise ValueError(f"channel name {v!r} must be {CHANNEL_NAME_RULE}")
        return v

    @field_validator("target")
    @classmethod
    def _target_present(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("target is empty: give an address, number or URL")
        return v


def subscription_id(task_id: str, target: Target) -> str:
    """A stable id for a subscriber of a task, derived from what it is: the task id, the
    channel, the (normalised) target, the options and, for a :class:`Subscription`, its
    fallbacks. The same subscriber twice is one subscription, however it was added."""

    def part(t: Target) -> list[Any]:
        return [t.channel, t.target, t.options]

    what: list[Any] = [task_id, part(target)]
    if isinstance(target, Subscription):
        what.append([part(t) for t in target.fallback])
    text = json.dumps(what, sort_keys=True, separators=(",", ":"), default=str)
    return "s_" + hashlib.sha256(text.encode()).hexdigest()[:16]


class Subscription(Target):
    """A subscriber of one task: where to deliver, what to fall back to, which outcomes."""

    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    fallback: list[Target] = Field(default_factory=list, max_length=8)
    outcomes: list[Outcome] = Field(default_factory=lambda: list(_DEFAULT_OUTCOMES))
    template: str | None = None
    source: str | None = Field(None, description="standing subscription name, when routed")
    from_task: bool = Field(
        False, description="set by run for the subscriptions it journaled with the task: "
        "their waiting receipts are kept with the task, not written one by one")

    @classmethod
    def parse(cls, value: object) -> Subscription:
        """A bare email address, ``CHANNEL:TARGET``, or an object with channel and target."""
        if isinstance(value, Subscription):
            return value
        if isinstance(value, str):
            text = value.strip()
            if _EMAIL.match(text):
                return cls(channel="email", target=text)
            channel, sep, target = text.partition(":")
            if sep and CHANNEL_NAME.match(channel) and target.strip():
                return cls(channel=channel, target=target)
            raise ValueError(
                f"subscriber {value!r} is neither an email address nor CHANNEL:TARGET "
                "(e.g. 'me@example.com' or 'webhook:https://example.com/hook')"
            )
        if isinstance(value, dict):
            return cls.model_validate(value)
        raise ValueError(
            f"subscriber must be a string or an object with channel and target, "
            f"not {type(value).__name__}"
        )

    def identified(self, task_id: str) -> Subscription:
        """This subscription with the id derived from what it is (any given id replaced)."""
        return self.model_copy(update={"id": subscription_id(task_id, self)})


class TaskRequest(_Strict):
    """What a caller sends to start a task (``run``): a bare prompt string is accepted too."""

    prompt: str = Field(min_length=1, max_length=100_000)
    agent: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    subscriptions: list[Subscription] = Field(default_factory=list, max_length=1000)

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompt is empty: say what the agent should do")
        return v

    @field_validator("subscriptions", mode="before")
    @classmethod
    def _parse_subscribers(cls, v: object) -> object:
        if isinstance(v, list):
            return [Subscription.parse(item) if isinstance(item, str) else item for item in v]
        return v

    @classmethod
    def parse(cls, value: object) -> TaskRequest:
        if isinstance(value, str):
            return cls(prompt=value)
        return cls.model_validate(value)


class Task(_Strict):
    """A task as journaled by ``run``: the request plus its key and time of acceptance."""

    task_id: str
    prompt: str
    agent: str
    labels: dict[str, str] = Field(default_factory=dict)
    submitted_at: float


class TaskResult(_Strict):
    """The value of the durable promise ``result``: what every subscriber is told."""

    task_id: str
    agent: str
    prompt: str
    labels: dict[str, str] = Field(default_factory=dict)
    output: str
    model: str
    completed_at: float


class TaskState(StrEnum):
    UNKNOWN = "unknown"
    #: not run yet, but subscribers are waiting for it (or were rejected)
    NOT_STARTED = "not-started"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DeliveryState(StrEnum):
    WAITING = "waiting"
    DELIVERING = "delivering"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    DELIVERED_BY_FALLBACK = "delivered-by-fallback"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    #: the subscriber was invalid (sent straight to the ingress): never delivered
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self in _FINAL_STATES


_FINAL_STATES = {
    DeliveryState.DELIVERED,
    DeliveryState.DELIVERED_BY_FALLBACK,
    DeliveryState.FAILED,
    DeliveryState.CANCELLED,
    DeliveryState.SKIPPED,
    DeliveryState.REJECTED,
}


class AttemptRecord(_Strict):
    """One delivery attempt of a subscription, kept as history in its receipt."""

    number: int = Field(description="1, 2, ... across the channel and its fallbacks; 0: the "
                                    "channel could not be used, nothing was sent")
    at: float | None = None
    channel: str
    outcome: Literal["delivered", "failed", "not-sent"]
    error: str | None = None
    provider_status: int | None = None


class DeliveryReceipt(_Strict):
    """What happened to one subscription's delivery. Targets are shown redacted."""

    subscription_id: str
    channel: str
    target: str
    state: DeliveryState
    kind: str = "result"
    channel_used: str | None = None
    attempts: int = 0
    #: the error of the current state (retrying, failed, rejected); earlier attempts' errors
    #: are in ``history``
    last_error: str | None = None
    provider_status: int | None = None
    message_id: str | None = None
    history: list[AttemptRecord] = Field(default_factory=list)
    created_at: float
    updated_at: float
    delivered_at: float | None = None
    invocation_id: str | None = None
    #: when ``retrying``: when the next attempt is due (POSIX seconds)
    next_attempt_at: float | None = None
    #: the target in full, less anything secret, for callers who may read the task
    #: (``--show-targets``); ``target`` is the redacted form
    address: str | None = None


class TaskStatus(_Strict):
    """Everything ``gateway status`` shows about a task."""

    task_id: str
    state: TaskState
    agent: str | None = None
    prompt: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    submitted_at: float | None = None
    completed_at: float | None = None
    output: str | None = None
    error: str | None = None
    deliveries: list[DeliveryReceipt] = Field(default_factory=list)
