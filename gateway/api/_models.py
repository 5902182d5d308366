"""Request and response bodies of the HTTP API; the OpenAPI document is generated from them.

Requests are strict (an unknown field is an error) and bounded. A subscriber is written as
in the CLI (``"me@example.com"``, ``"CHANNEL:TARGET"``) or as an object; unlike the Restate
handlers, the API takes no per-subscription channel ``options``: a caller must not be able
to change where a channel connects or relax its rules (``allow_private_targets``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel

from gateway.core import CHANNEL_NAME_PATTERN, Outcome, Subscription

__all__ = [
    "SUBSCRIPTION_ID_PATTERN",
    "TASK_ID_PATTERN",
    "ErrorBody",
    "ErrorField",
    "Health",
    "Readiness",
    "SubscriberIn",
    "SubscriptionCreate",
    "SubscriptionOut",
    "TargetIn",
    "TaskCreate",
    "TaskCreated",
]

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
SUBSCRIPTION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
_AGENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetIn(_Strict):
    """A channel and a target on it (an address, a number, a URL)."""

    channel: str = Field(pattern=CHANNEL_NAME_PATTERN, examples=["email"])
    target: str = Field(min_length=1, max_length=2048, examples=["me@example.com"])


def _default_outcomes() -> list[Outcome]:
    return ["succeeded", "failed"]


class SubscriberIn(TargetIn):
    """A subscriber: where to deliver, what to fall back to, which outcomes to tell."""

    fallback: list[TargetIn] = Field(default_factory=list, max_length=8,
                                     description="tried in order when the channel gives up")
    outcomes: list[Outcome] = Field(default_factory=_default_outcomes, min_length=1,
                                    max_length=3)
    template: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                                 description="a template set of the configuration")


def _from_text(value: object) -> object:
    """``"me@example.com"`` or ``"CHANNEL:TARGET"`` as an object (ValueError says why not)."""
    if isinstance(value, str):
        parsed = Subscription.parse(value)
        return {"channel": parsed.channel, "target": parsed.target}
    return value


SubscriberText = Annotated[str, Field(min_length=1, max_length=2048,
                                      examples=["me@example.com", "slack:#ml-alerts"])]
Subscriber = Annotated[
    SubscriberIn, BeforeValidator(_from_text, json_schema_input_type=SubscriberText | SubscriberIn)
]
LabelKey = Annotated[str, Field(min_length=1, max_length=64)]
LabelValue = Annotated[str, Field(max_length=256)]


class TaskCreate(_Strict):
    """A task to start. Give ``prompt``, ``input`` (a JSON object handed to the agent with the
    prompt) or both."""

    task_id: str | None = Field(
        None, pattern=TASK_ID_PATTERN,
        description="the workflow key; default: from the Idempotency-Key header, else new")
    prompt: str | None = Field(None, min_length=1, max_length=100_000)
    input: dict[str, Any] | None = Field(None, description="structured input for the agent")
    agent: str = Field("default", pattern=_AGENT)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    subscriptions: list[Subscriber] = Field(default_factory=list, max_length=100)
    callback_url: str | None = Field(
        None, min_length=1, max_length=2048,
        description="a signed webhook (Standard Webhooks) gets the outcome; same rules as the "
                    "webhook channel's targets")


class SubscriptionCreate(RootModel[Subscriber]):
    """A subscriber: ``"me@example.com"``, ``"CHANNEL:TARGET"`` or an object."""


class SubscriptionOut(_Strict):
    """A subscription of a task; the target is shown redacted."""

    task_id: str
    subscription_id: str
    channel: str
    target: str


class TaskCreated(_Strict):
    """A started task (``created`` false: it had been started before, and runs once)."""

    task_id: str
    status_url: str
    created: bool
    subscriptions: list[SubscriptionOut] = Field(default_factory=list)
    subscriptions_added: int = Field(
        0, description="subscribers this request added: all of them for a new task; for a "
                       "repeat, those the task did not have yet (they are told its outcome)")


class ErrorField(_Strict):
    field: str = Field(description="where: body.prompt, subscriptions[0].target, a header ...")
    message: str


class ErrorBody(_Strict):
    """Every error: a stable code, one line saying what to change, and the fields at fault."""

    error: str = Field(examples=["invalid_request"])
    message: str
    fields: list[ErrorField] = Field(default_factory=list)


class Health(_Strict):
    status: Literal["ok"]


class Readiness(_Strict):
    status: Literal["ready", "not_ready"]
    reason: str | None = None
