"""Channels: the plugin contract, the entry-point registry, the egress guard, what untrusted
subscribers may use, and rendering a message for a channel. A channel plugin needs nothing
but this package: a new channel is a plugin package under ``plugins/``."""

from gateway.channels._allowance import BUILTIN_OPEN_PLUGINS, check_untrusted, open_channels
from gateway.channels._base import Channel, Message, MessageKind, NoOptions, SendReceipt
from gateway.channels._egress import (
    EgressPolicy,
    EgressRefused,
    GuardedSender,
    classify_address,
    classify_host,
    current_policy,
    egress_policy,
)
from gateway.channels._formats import format_problem
from gateway.channels._http_status import http_failure, parse_retry_after
from gateway.channels._post import PostClient, PostResponse, PostTransportError
from gateway.channels._registry import (
    ENTRY_POINT_GROUP,
    ChannelInstance,
    ChannelPlugin,
    Channels,
    discover_plugins,
    format_validation_error,
)
from gateway.channels._time_limit import TIMEOUT_OPTION, TimeoutOption, split_timeout
from gateway.channels._whsec import whsec_key
from gateway.channels.render import Renderer, TaskView, check_templates
from gateway.core import MARKER as REDACTED
from gateway.core import (
    MASK,
    SECRET,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    mask_email,
    mask_phone,
    redactor,
    shorten,
)

__all__ = [
    "BUILTIN_OPEN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "MASK",
    "REDACTED",
    "SECRET",
    "TIMEOUT_OPTION",
    "Channel",
    "ChannelInstance",
    "ChannelPlugin",
    "Channels",
    "DeliveryError",
    "EgressPolicy",
    "EgressRefused",
    "GuardedSender",
    "Message",
    "MessageKind",
    "NoOptions",
    "PermanentDeliveryError",
    "PostClient",
    "PostResponse",
    "PostTransportError",
    "Renderer",
    "SendReceipt",
    "TaskView",
    "TimeoutOption",
    "TransientDeliveryError",
    "check_templates",
    "check_untrusted",
    "classify_address",
    "classify_host",
    "current_policy",
    "discover_plugins",
    "egress_policy",
    "format_problem",
    "format_validation_error",
    "http_failure",
    "mask_email",
    "mask_phone",
    "open_channels",
    "parse_retry_after",
    "redactor",
    "shorten",
    "split_timeout",
    "whsec_key",
]
