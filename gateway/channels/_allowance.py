"""Which channels, options and targets a subscriber that does not come from the YAML file may use.

Untrusted subscribers are everything but the YAML file's standing subscriptions: API callers
(subscriptions and ``callback_url``), inbound hooks, and bodies that reach the Restate ingress
(``run``, ``subscribe``, ``on_notify``). They may use the channels of ``api.channels``; when it
is not set, the channels of the built-in named plugins (email, slack, sms, webhook) - never the
raw ``apprise`` channel, whose target chooses where and how it connects. They may set only the
options a plugin lists in ``subscriber_options``, and the plugin may refuse more
(``validate_untrusted``: an Apprise URL choosing its method, headers or body fields). A target
naming a loopback, private or link-local host is refused here, before anything is sent; the
YAML file's own subscriptions meet the egress guard when they connect (a failed receipt).
"""

from __future__ import annotations

from collections.abc import Collection

from gateway.channels._egress import classify_host
from gateway.channels._registry import Channels
from gateway.channels._time_limit import MAX_SUBSCRIBER_TIMEOUT, TIMEOUT_OPTION
from gateway.core import SubscriptionError, Target

__all__ = ["BUILTIN_OPEN_PLUGINS", "check_untrusted", "open_channels"]

#: plugins whose channels are open to untrusted subscribers when ``api.channels`` is not set
BUILTIN_OPEN_PLUGINS = frozenset({"email", "slack", "sms", "webhook"})


def open_channels(channels: Channels, configured: Collection[str] | None) -> frozenset[str]:
    """The channels untrusted subscribers may use: ``configured`` (``api.channels``) or, when
    it is None, every channel of a built-in named plugin."""
    if configured is not None:
        return frozenset(configured)
    return frozenset(name for name in channels.names
                     if channels.get(name).plugin.name in BUILTIN_OPEN_PLUGINS)


def check_untrusted(channels: Channels, target: Target, configured: Collection[str] | None) -> str:
    """Like :meth:`Channels.check`, for a subscriber that does not come from the YAML file:
    the normalised target, or ``SubscriptionError`` saying what is not allowed."""
    inst = channels.get(target.channel)  # an unknown channel is named as such first
    allowed = open_channels(channels, configured)
    if target.channel not in allowed:
        raise SubscriptionError(
            f"channel {target.channel!r} is not open to API callers, inbound hooks or the "
            f"Restate ingress; open: {', '.join(sorted(allowed)) or 'none'} (the YAML file's "
            "api.channels lists the open ones)")
    settable = inst.channel.subscriber_options
    refused = sorted(set(target.options) - settable)
    if refused:
        may = f"; a subscriber may set: {', '.join(sorted(settable))}" if settable else ""
        raise SubscriptionError(
            f"channel {target.channel!r}: options {', '.join(refused)} can only be set in the "
            f"YAML file{may}")
    normalised = channels.check(target)
    options = inst.effective_options(target.options)
    timeout = target.options.get(TIMEOUT_OPTION)
    if isinstance(timeout, int | float) and timeout > MAX_SUBSCRIBER_TIMEOUT:
        raise SubscriptionError(
            f"channel {target.channel!r}: options.timeout: at most "
            f"{MAX_SUBSCRIBER_TIMEOUT:g} seconds (it can only lower the attempt timeout)")
    try:
        inst.channel.validate_untrusted(normalised, options)
        hosts = [] if inst.allow_private_targets else inst.channel.target_hosts(normalised,
                                                                                 options)
    except ValueError as exc:
        raise SubscriptionError(f"channel {target.channel!r}: target: {exc}") from None
    for host in hosts:
        why = classify_host(host)
        if why is not None:
            raise SubscriptionError(
                f"channel {target.channel!r}: target: {host} is a {why} address; the channel "
                "only connects to public addresses (the YAML file's "
                f"channels.{target.channel}.allow_private_targets allows private ones)")
    return normalised
