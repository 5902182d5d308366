"""The typed inputs of the handlers that take what a caller sends to the ingress.

``run``, ``subscribe``, ``add_subscribers`` and ``on_notify`` take any JSON (the seed's bare
``"me@example.com"`` too) and check it themselves, so that bad input gets the clear error it
always got, and a refused ``on_notify`` sent with ``/send`` is recorded as rejected. Their
input types are still pydantic models, carried through :class:`BodySerde`, whose JSON schema
says what is accepted: Restate's UI playground shows it. A body that is not JSON (or empty)
arrives as :class:`Unreadable`, for the handler to refuse in its own words.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Generic, TypeVar, cast

from pydantic import BaseModel, JsonValue, RootModel, TypeAdapter, WithJsonSchema
from restate import TerminalError
from restate.serde import Serde

from gateway.core import (
    DeliveryReceipt,
    DeliveryState,
    Subscription,
    TaskRequest,
    TaskResult,
    TaskState,
)

__all__ = [
    "AddedSubscribers",
    "BodySerde",
    "Notified",
    "NotifyAck",
    "RunOutcome",
    "SubscriberBody",
    "SubscribersBody",
    "SubscriptionAdded",
    "TaskBody",
    "TaskFailed",
    "Unreadable",
]


class Unreadable(BaseModel):
    """A body that is not JSON: its text (cut), and what is wrong with it."""

    text: str
    problem: str


def _schema(tp: Any) -> dict[str, Any]:
    """The JSON schema of ``tp``, its definitions inlined (it is embedded in another)."""
    schema = TypeAdapter(tp).json_schema(mode="serialization")
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


_SUBSCRIBER = str | Subscription


class _Body(RootModel[Any]):
    root: Any

    def value(self, handler: str, expected: str) -> JsonValue:
        """The JSON sent; TerminalError(400) saying what to send instead when it is none."""
        root = self.root
        if isinstance(root, Unreadable):
            raise TerminalError(f"{handler}: {root.problem}; send {expected}", 400)
        value: JsonValue = root
        return value


class SubscriberBody(_Body):
    """``"me@example.com"``, ``"CHANNEL:TARGET"`` or a subscription object."""

    root: Annotated[JsonValue | Unreadable, WithJsonSchema(_schema(_SUBSCRIBER))]

    @classmethod
    def of(cls, value: JsonValue) -> SubscriberBody:
        return cls.model_construct(root=value)

    @classmethod
    def of_subscription(cls, sub: Subscription) -> SubscriberBody:
        return cls.of(sub.model_dump(mode="json", exclude_defaults=True))


class SubscribersBody(_Body):
    """A list of subscribers (a repeat submit's)."""

    root: Annotated[JsonValue | Unreadable, WithJsonSchema(_schema(list[_SUBSCRIBER]))]


class TaskBody(_Body):
    """``"a prompt"`` or ``{"prompt": ..., "agent": ..., "subscriptions": [...]}``."""

    root: Annotated[JsonValue | Unreadable, WithJsonSchema(_schema(str | TaskRequest))]


B = TypeVar("B", bound=_Body)


class BodySerde(Serde[B], Generic[B]):
    """JSON in, the body model out, never failing: what is not JSON becomes Unreadable."""

    def __init__(self, model: type[B]) -> None:
        self.model = model

    def deserialize(self, buf: bytes) -> B | None:
        root: JsonValue | Unreadable
        if not buf:
            root = Unreadable(text="", problem="the request body is empty")
        else:
            try:
                root = json.loads(buf)
            except ValueError as exc:
                root = Unreadable(text=bytes(buf).decode(errors="replace")[:2048],
                                  problem=f"the request body is not valid JSON ({exc})")
        # not validated here: the handler checks it, and says what is wrong in its own words
        return cast(B, self.model.model_construct(root=root))

    def serialize(self, obj: B | None) -> bytes:
        if obj is None:
            return b""
        if isinstance(obj.root, Unreadable):
            return obj.root.text.encode()
        return json.dumps(obj.root, separators=(",", ":")).encode()


class SubscriptionAdded(BaseModel):
    """A subscriber added: its subscription id, channel and (masked) target."""

    task_id: str
    subscription_id: str
    channel: str
    target: str


class AddedSubscribers(BaseModel):
    """A repeat submit's subscribers: those added, and those the task had already."""

    task_id: str
    added: list[SubscriptionAdded]
    existing: list[SubscriptionAdded]


class NotifyAck(BaseModel):
    """What ``on_notify`` answers when it does not deliver itself: another start of the same
    subscriber delivers (waiting), or it holds that id for a cancelled subscriber."""

    task_id: str | None = None
    subscription_id: str
    state: DeliveryState


class Notified(RootModel[DeliveryReceipt | NotifyAck]):
    """What ``on_notify`` answers: the subscription's receipt, or a NotifyAck."""


class TaskFailed(BaseModel):
    """How ``run`` ends when the task failed (or was invalid)."""

    task_id: str
    state: TaskState
    error: str


class RunOutcome(RootModel[TaskResult | TaskFailed]):
    """What ``run`` answers: the task's result, or why it failed."""
