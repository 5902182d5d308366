"""Channels: the plugin contract and the entry-point registry."""

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
