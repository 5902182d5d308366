"""Errors of the notification gateway, split by who is at fault.

::

    GatewayError
    ├── UserInputError            the caller's input or configuration: says what to change
    │   ├── ConfigError           a configuration file (file, line, key path)
    │   ├── SubscriptionError     a subscriber spec (unknown channel, bad target, bad options)
    │   ├── TaskInputError        a task request (empty prompt, malformed body)
    │   └── RenderError           a template that fails on a task (names the template)
    ├── PluginError               a channel plugin that cannot be loaded (names the distribution)
    ├── EngineError               the Restate server could not be started, reached or registered
    └── DeliveryError             a channel could not deliver a message (raised by ``send``)
        ├── PermanentDeliveryError   will never succeed as is (bad address, 4xx): no retry
        └── TransientDeliveryError   may succeed later (timeout, 5xx, 429): retried

Delivery errors never carry secrets: channels build their messages from redacted parts.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeliveryError",
    "EngineError",
    "GatewayError",
    "PermanentDeliveryError",
    "PluginError",
    "RenderError",
    "SubscriptionError",
    "TaskInputError",
    "TransientDeliveryError",
    "UserInputError",
]


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class UserInputError(GatewayError):
    """The caller's input or configuration is wrong; the message says what to change."""


class ConfigError(UserInputError):
    """A configuration file is invalid; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class SubscriptionError(UserInputError):
    """A subscriber spec is invalid (unknown channel, bad target, bad options)."""


class TaskInputError(UserInputError):
    """A task request is invalid (empty prompt, unknown agent, malformed body)."""


class RenderError(UserInputError):
    """A template failed to render for a task; the message names the template."""


class PluginError(GatewayError):
    """A channel plugin could not be loaded or clashes with another one."""


class EngineError(GatewayError):
    """The Restate server could not be started, reached or registered."""


class DeliveryError(GatewayError):
    """A channel failed to deliver. ``status`` is the provider's HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PermanentDeliveryError(DeliveryError):
    """Delivery will never succeed as is: do not retry, go to the fallback channel."""


class TransientDeliveryError(DeliveryError):
    """Delivery may succeed later; ``retry_after`` (seconds) is the provider's hint."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
