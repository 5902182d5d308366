"""The channel plugin contract.

A channel plugin is a class, named by an entry point in the group
``notification_gateway.channels``, that subclasses :class:`Channel`:

* ``name`` - the plugin's name (what subscriptions write before the colon);
* ``Options`` - a pydantic model of its options, validated when the configuration is loaded
  and when a subscription is made (per-subscription options override the configured ones);
* ``async send(message, options) -> SendReceipt`` - delivers or *raises*:
  :class:`~gateway.core.errors.PermanentDeliveryError` for what will never succeed as is,
  :class:`~gateway.core.errors.TransientDeliveryError` for what may succeed later; within
  ``message.time_limit`` seconds (the channel's ``retry.attempt_timeout``, after which the
  core cancels the attempt), so it gives its library ``message.send_timeout`` (a little less)
  and raises its own "timed out" error first. A plugin declares no timeout option of its own;
* ``validate_target`` / ``redact_target`` - check a target when a subscription is made and
  show it without secrets in receipts and logs;
* ``subscriber_options``, ``validate_untrusted`` and ``target_hosts`` - what a subscriber that
  does not come from the YAML file may set (``timeout`` there: it may lower the attempt
  timeout of its own subscription), what it may not ask for, and the hosts a target
  connects to (checked against the egress guard when subscribing);
* ``template_kind`` / ``template_fields`` - the message format the channel wants: a built-in
  one, or its own fields with their default templates;
* ``aopen()`` - prepare, once the gateway serves, what the first delivery would otherwise
  pay for (a library's lazy start-up); ``aclose()`` - release shared clients at shutdown.

One instance of a plugin class serves every delivery of the process, so it keeps shared
clients (one pooled HTTP client, not one per call).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from gateway.channels._time_limit import send_timeout
from gateway.core import RetryPolicy

__all__ = ["Channel", "Message", "MessageKind", "NoOptions", "SendReceipt"]

MessageKind = Literal["result", "failure", "still_running"]


class NoOptions(BaseModel):
    """Options model of a channel that takes none."""

    model_config = ConfigDict(extra="forbid")


class Message(BaseModel):
    """One rendered notification for one target.

    ``id`` is stable for a (task, subscription, kind): retries of the same delivery carry the
    same id, so receivers can drop duplicates (the ``webhook-id`` of signed webhooks).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    task_id: str
    subscription_id: str
    kind: MessageKind
    target: str
    subject: str
    text: str
    html: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    #: seconds this attempt may take: the core cancels ``send`` after it
    time_limit: float = Field(RetryPolicy().attempt_timeout, gt=0)

    @property
    def send_timeout(self) -> float:
        """Seconds for the library's timeouts: a little below ``time_limit``, so the
        plugin's own "timed out" error comes before the core cancels the attempt."""
        return send_timeout(self.time_limit)


class SendReceipt(BaseModel):
    """What the provider said when it accepted a message."""

    model_config = ConfigDict(extra="forbid")

    provider_status: int | None = None
    provider_id: str | None = None
    detail: str | None = None


OptionsT = TypeVar("OptionsT", bound=BaseModel)


class Channel(ABC, Generic[OptionsT]):
    """Base class of every channel plugin (see the module docstring for the contract)."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: default retry policy; a configured channel instance may override it
    retry: ClassVar[RetryPolicy] = RetryPolicy()
    #: the longest text a message may have on this channel (SMS), or None
    max_text_length: ClassVar[int | None] = None
    #: the channel's message format: "email", "slack", "sms", "webhook", "text", or a kind of
    #: its own whose fields are in ``template_fields`` (see :mod:`gateway.channels._formats`)
    template_kind: ClassVar[str] = "text"
    #: a format of its own: template field -> default template (plain text); each field is
    #: rendered into ``Message.data[field]``
    template_fields: ClassVar[Mapping[str, str]] = {}

    def validate_target(self, target: str, options: OptionsT) -> str:
        """Return the target, normalised, or raise ``ValueError`` saying what is wrong."""
        return target

    #: options a subscriber that does not come from the YAML file may set (API callers,
    #: inbound hooks, the Restate ingress); every other option is the operator's
    subscriber_options: ClassVar[frozenset[str]] = frozenset()

    def validate_untrusted(self, target: str, options: OptionsT) -> None:
        """Raise ``ValueError`` if an untrusted subscriber may not ask for ``target`` (e.g. a
        URL that chooses the HTTP method or headers). Called after ``validate_target``."""

    def target_hosts(self, target: str, options: OptionsT) -> list[str]:
        """The hosts a delivery to ``target`` connects to, when the target names them (an IP
        literal or ``localhost`` there is refused when an untrusted caller subscribes, unless
        the channel allows private targets)."""
        return []

    def redact_target(self, target: str) -> str:
        """The target as shown in receipts, logs and traces (no secrets, tokens or passwords)."""
        return target

    def reveal_target(self, target: str) -> str:
        """The target as ``--show-targets`` shows it to a caller who may read the task: in
        full, less anything secret (a token in a URL). Default: as :meth:`redact_target`."""
        return self.redact_target(target)

    @abstractmethod
    async def send(self, message: Message, options: OptionsT) -> SendReceipt:
        """Deliver ``message`` or raise a :class:`~gateway.core.errors.DeliveryError`."""

    async def aopen(self) -> None:
        """Prepare, off the event loop, what the first delivery would otherwise pay for (a
        library loading its plugins), when the gateway starts serving. It runs beside the
        first deliveries, which must not depend on it; a failure is logged and changes
        nothing else. Default: nothing."""

    async def aclose(self) -> None:
        """Release shared resources (HTTP clients) at shutdown."""
