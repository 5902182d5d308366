"""Channel discovery from entry points, and the configured channel instances of a process."""

from __future__ import annotations

import asyncio
import importlib.metadata as md
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.channels._base import Channel
from gateway.channels._egress import GuardedSender, egress_policy
from gateway.channels._time_limit import attempt_limit, split_timeout
from gateway.core import PluginError, RetryPolicy, SubscriptionError, Target, secret_values

log = logging.getLogger("gateway.channels")

__all__ = [
    "ENTRY_POINT_GROUP",
    "ChannelInstance",
    "ChannelPlugin",
    "Channels",
    "discover_plugins",
    "format_validation_error",
]

ENTRY_POINT_GROUP = "notification_gateway.channels"


@dataclass(frozen=True)
class ChannelPlugin:
    """A discovered plugin: its class and the distribution that ships it."""

    name: str
    cls: type[Channel[Any]]
    distribution: str
    version: str


def _dist_of(ep: md.EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return ("<unknown distribution>", "?")
    return (dist.metadata["Name"] or dist.name, dist.version)


def discover_plugins(
    entry_points: Iterable[md.EntryPoint] | None = None,
) -> dict[str, ChannelPlugin]:
    """Load every channel plugin; fail on an import error or a name claimed twice."""
    eps = md.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    found: dict[str, ChannelPlugin] = {}
    for ep in eps:
        dist, version = _dist_of(ep)
        try:
            cls = ep.load()
        except Exception as exc:
            raise PluginError(
                f"channel plugin {ep.name!r} from distribution {dist} {version} failed to "
                f"import ({ep.value}): {type(exc).__name__}: {exc}; reinstall or remove {dist}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Channel)):
            raise PluginError(
                f"channel plugin {ep.name!r} from distribution {dist} {version} names "
                f"{ep.value}, which is not a subclass of gateway.channels.Channel"
            )
        if ep.name in found:
            other = found[ep.name]
            if other.cls is cls:
                continue
            raise PluginError(
                f"channel name {ep.name!r} is claimed by two distributions: "
                f"{other.distribution} {other.version} and {dist} {version}; uninstall one"
            )
        found[ep.name] = ChannelPlugin(ep.name, cls, dist, version)
    return found


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem: ``prefix.field: message``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


@dataclass
class ChannelInstance:
    """A named channel of this gateway: a plugin, its configured options and retry policy."""

    name: str
    plugin: ChannelPlugin
    channel: Channel[Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: may connect to private, loopback and link-local addresses (the YAML file only)
    allow_private_targets: bool = False
    _validated: dict[str, BaseModel] = field(default_factory=dict, repr=False)

    def effective_options(self, overrides: Mapping[str, Any]) -> BaseModel:
        """Configured options with the subscription's overrides, validated by the plugin
        (``timeout`` is the core's: see :meth:`attempt_timeout`)."""
        key = repr(sorted(overrides.items())) if overrides else ""
        cached = self._validated.get(key)
        if cached is not None:
            return cached
        try:
            merged, _ = split_timeout({**self.options, **overrides})
            opts = self.plugin.cls.Options.model_validate(merged)
        except ValidationError as exc:
            raise SubscriptionError(
                f"channel {self.name!r}: {format_validation_error(exc, 'options')}"
            ) from None
        if len(self._validated) < 1024:
            self._validated[key] = opts
        return opts

    def attempt_timeout(self, overrides: Mapping[str, Any]) -> float:
        """Seconds one attempt of a delivery may take: ``retry.attempt_timeout``, lowered by
        a ``timeout`` option of the channel or of the subscription (``overrides``)."""
        try:
            timeouts = [split_timeout(o)[1] for o in (self.options, overrides)]
        except ValidationError as exc:
            raise SubscriptionError(
                f"channel {self.name!r}: {format_validation_error(exc, 'options')}"
            ) from None
        return attempt_limit(self.retry.attempt_timeout, *timeouts)

    @property
    def sender(self) -> GuardedSender:
        """The plugin's ``send`` under this channel's egress policy."""
        return GuardedSender(self.channel, name=self.name,
                             allow_private=self.allow_private_targets)


class Channels:
    """The channel instances a process delivers through, by name."""

    def __init__(self, plugins: Mapping[str, ChannelPlugin],
                 instances: Mapping[str, ChannelInstance]) -> None:
        self.plugins = dict(plugins)
        self._instances = dict(instances)

    @classmethod
    def from_plugins(
        cls,
        plugins: Mapping[str, ChannelPlugin],
        configured: Mapping[str, tuple[str, Mapping[str, Any], RetryPolicy | None]] | None = None,
        *,
        shared: Channels | None = None,
        private_targets: Collection[str] = (),
    ) -> Channels:
        """Every plugin under its own name with default options, plus configured instances
        (``name -> (plugin name, options, retry policy)``), which win on a name clash.
        ``private_targets``: the channels the egress guard lets reach private addresses (a
        configured ``allow_private_targets: true`` option counts too).
        One object per plugin serves all its instances; ``shared`` lends its objects (and so
        their pooled clients) to the new set, as a configuration reload does."""
        shared_objects: dict[str, Channel[Any]] = (
            {i.plugin.name: i.channel for i in shared._instances.values()} if shared else {}
        )

        def instance(name: str, plugin_name: str, options: Mapping[str, Any],
                     retry: RetryPolicy | None) -> ChannelInstance:
            if plugin_name not in plugins:
                raise PluginError(
                    f"channel {name!r} needs plugin {plugin_name!r}, which is not installed; "
                    f"installed: {', '.join(sorted(plugins)) or 'none'}"
                )
            plugin = plugins[plugin_name]
            channel = shared_objects.get(plugin_name)
            if channel is None:
                channel = shared_objects[plugin_name] = plugin.cls()
            private = name in private_targets or options.get("allow_private_targets") is True
            return ChannelInstance(name, plugin, channel, dict(options), retry or plugin.cls.retry,
                                   allow_private_targets=private)

        instances = {name: instance(name, name, {}, None) for name in plugins}
        for name, (plugin_name, options, retry) in (configured or {}).items():
            instances[name] = instance(name, plugin_name, options, retry)
        return cls(plugins, instances)

    @property
    def names(self) -> list[str]:
        return sorted(self._instances)

    def secret_values(self) -> set[str]:
        """Every secret in the options of every channel, configured or a plugin's own default
        from the environment (``SMTP_PASSWORD``...), for the process's redaction set."""
        found: set[str] = set()
        for inst in self._instances.values():
            try:
                found |= secret_values(inst.effective_options({}))
            except SubscriptionError:
                continue  # options that do not validate fail, redacted, when they are used
        return found

    def get(self, name: str) -> ChannelInstance:
        try:
            return self._instances[name]
        except KeyError:
            raise SubscriptionError(
                f"unknown channel {name!r}; known: {', '.join(self.names) or 'none installed'}"
            ) from None

    def check(self, target: Target) -> str:
        """Validate a target against its channel now, so bad input never reaches a retry loop.
        Returns the normalised target."""
        inst = self.get(target.channel)
        opts = inst.effective_options(target.options)
        with egress_policy(allow_private=inst.allow_private_targets, what=inst.name):
            try:
                return inst.channel.validate_target(target.target, opts)
            except ValueError as exc:
                raise SubscriptionError(f"channel {target.channel!r}: target: {exc}") from None

    async def aopen(self) -> None:
        """Let every channel prepare what its first delivery would pay for (see
        ``Channel.aopen``); one that fails pays it at its first delivery instead."""
        unique = {id(i.channel): i for i in self._instances.values()}
        results = await asyncio.gather(*(i.channel.aopen() for i in unique.values()),
                                       return_exceptions=True)
        for inst, result in zip(unique.values(), results, strict=True):
            if isinstance(result, Exception):
                log.warning("channel %s could not prepare itself (its first delivery will): %s",
                            inst.name, type(result).__name__)
            elif isinstance(result, BaseException):
                raise result

    async def aclose(self) -> None:
        unique = {id(i.channel): i.channel for i in self._instances.values()}
        await asyncio.gather(*(c.aclose() for c in unique.values()))
