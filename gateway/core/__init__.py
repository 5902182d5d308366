"""The core: the domain models, errors, routing, templates and texts. Pure: no I/O, no
dependency on any other layer of the gateway."""

from gateway.core.errors import (
    ConfigError,
    DeliveryError,
    EngineError,
    GatewayError,
    PermanentDeliveryError,
    PluginError,
    RenderError,
    SubscriptionError,
    TaskInputError,
    TransientDeliveryError,
    UserInputError,
)
from gateway.core.masks import MASK, mask_email, mask_phone
from gateway.core.models import (
    AttemptRecord,
    DeliveryReceipt,
    DeliveryState,
    Outcome,
    RetryPolicy,
    Subscription,
    Target,
    Task,
    TaskRequest,
    TaskResult,
    TaskState,
    TaskStatus,
    subscription_id,
)
from gateway.core.names import CHANNEL_NAME, CHANNEL_NAME_PATTERN, CHANNEL_NAME_RULE
from gateway.core.redaction import MARKER, MIN_SECRET_LENGTH, SECRET, redactor, secret_values
from gateway.core.routing import fallback_chain, route
from gateway.core.status_text import delivery_state_text, repeat_note, task_state_text
from gateway.core.task_keys import TENANT_SEPARATOR, shown_task_id
from gateway.core.templates import DEFAULT_TEMPLATES, TemplateProblem, TemplateSet
from gateway.core.text import shorten

__all__ = [
    "CHANNEL_NAME",
    "CHANNEL_NAME_PATTERN",
    "CHANNEL_NAME_RULE",
    "DEFAULT_TEMPLATES",
    "MARKER",
    "MASK",
    "MIN_SECRET_LENGTH",
    "SECRET",
    "TENANT_SEPARATOR",
    "AttemptRecord",
    "ConfigError",
    "DeliveryError",
    "DeliveryReceipt",
    "DeliveryState",
    "EngineError",
    "GatewayError",
    "Outcome",
    "PermanentDeliveryError",
    "PluginError",
    "RenderError",
    "RetryPolicy",
    "Subscription",
    "SubscriptionError",
    "Target",
    "Task",
    "TaskInputError",
    "TaskRequest",
    "TaskResult",
    "TaskState",
    "TaskStatus",
    "TemplateProblem",
    "TemplateSet",
    "TransientDeliveryError",
    "UserInputError",
    "delivery_state_text",
    "fallback_chain",
    "mask_email",
    "mask_phone",
    "redactor",
    "repeat_note",
    "route",
    "secret_values",
    "shorten",
    "shown_task_id",
    "subscription_id",
    "task_state_text",
]
