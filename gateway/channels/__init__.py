"""Channels: the plugin contract and the entry-point registry."""

from gateway._redaction import MARKER as REDACTED
from gateway._redaction import SECRET
from gateway.channels._base import Channel, Message, MessageKind, NoOptions, SendReceipt
from gateway.channels._registry import (
    ENTRY_POINT_GROUP,
    ChannelInstance,
    ChannelPlugin,
    Channels,
    discover_plugins,
    format_validation_error,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "REDACTED",
    "SECRET",
    "Channel",
    "ChannelInstance",
    "ChannelPlugin",
    "Channels",
    "Message",
    "MessageKind",
    "NoOptions",
    "SendReceipt",
    "discover_plugins",
    "format_validation_error",
]
