"""The gateway configuration: one YAML file, validated into a :class:`GatewayConfig`.

::

    agents:         name -> model, instructions, output schema, deadline, timeout
    channels:       name -> plugin, options (checked by the plugin), retry, fallback, template
    subscriptions:  standing subscriptions: who (targets), which tasks (match), how (notify)
    templates:      name -> Jinja2 templates per field (see gateway.core.templates)
    api:            the HTTP front door: API keys (hashes) with scopes, body limit, channels
    hooks:          name -> inbound webhook source: signature scheme, secret, task mapping

Strings may reference the environment as ``${NAME}`` (or ``${NAME:-default}``; ``$${`` is a
literal ``${``). Resolved values are secrets: they never appear in an error or a ``repr``,
and :meth:`GatewayConfig.secret_values` lists them so logs can redact them.

Loading collects every problem and raises :class:`~gateway.core.errors.ConfigError` with one line
per problem: ``FILE:LINE KEY.PATH: what is wrong``. Each section is its own model, so a new
section (``api``, ``hooks``) is one more field of :class:`GatewayConfig`.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from gateway.core import (
    CHANNEL_NAME,
    MIN_SECRET_LENGTH,
    Outcome,
    RetryPolicy,
    Subscription,
    Target,
    TaskInputError,
    TemplateSet,
    redactor,
)

if TYPE_CHECKING:
    from gateway.core import Task

from gateway.config._section import (
    _MODEL,
    _NAME_RE,
    _OFFLINE,
    DEFAULT_INSTRUCTIONS,
    Duration,
    Section,
    TargetText,
)
from gateway.config.api_section import SCOPES, ApiConfig, ApiKey, HmacScheme, HookSource

__all__ = [
    "SCOPES",
    "AgentConfig",
    "ApiConfig",
    "ApiKey",
    "ChannelConfig",
    "Destination",
    "GatewayConfig",
    "HmacScheme",
    "HookSource",
    "Match",
    "Section",
    "StandingSubscription",
    "TemplateSet",
]

class AgentConfig(Section):
    """One named agent: its model (offline, or a provider's: see gateway.config.model_providers),
    where and how to reach it, and its settings."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    model: str = Field("offline", description="pydantic-ai model string, or offline")
    base_url: str | None = Field(
        None, description="an OpenAI-compatible server (Ollama, vLLM, LiteLLM) or a proxy")
    api_key: SecretStr | None = Field(
        None, description="the provider's key, as ${ENV}; default: the provider's variable")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, description="most tokens of one answer")
    request_timeout: Duration | None = Field(
        None, description="seconds one model request may take before it is retried")
    instructions: str = DEFAULT_INSTRUCTIONS
    output_schema: str | None = Field(None, description="name of a known output schema")
    deadline: Duration | None = Field(
        None, description="seconds after which timed_out subscribers get a still-running notice")
    timeout: Duration | None = Field(
        None, description="seconds after submission the agent run may take at most; a model "
        "call still running then is cut short and the task fails")
    max_attempts: int = Field(3, ge=1, le=100, description="attempts of each model call")

    @field_validator("model")
    @classmethod
    def _model_string(cls, v: str) -> str:
        v = v.strip()
        if v.startswith("offline"):
            if not _OFFLINE.match(v):
                raise ValueError(f"{v!r} is not an offline model; use offline, offline:fail or "
                                 "offline:sleep=SECONDS")
        elif not _MODEL.match(v):
            raise ValueError(f"{v!r} is not a model string; use offline or PROVIDER:MODEL "
                             "(e.g. openai:gpt-4o-mini)")
        else:
            from gateway.config.model_providers import provider_problem

            problem = provider_problem(v)
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("base_url")
    @classmethod
    def _base_url_shape(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", v.strip()):
            raise ValueError("must be an http:// or https:// URL (e.g. "
                             "http://localhost:11434/v1 for Ollama)")
        return v.strip().rstrip("/") if v else v

    @model_validator(mode="after")
    def _deadline_before_timeout(self) -> AgentConfig:
        if self.deadline is not None and self.timeout is not None and self.deadline >= self.timeout:
            raise ValueError(f"deadline ({self.deadline:g}s) must be shorter than timeout "
                             f"({self.timeout:g}s): the still-running notice would come too late")
        return self


class ChannelConfig(Section):
    """One named channel instance: a plugin with its options."""

    plugin: str | None = Field(None, description="plugin name; default: the channel's name")
    options: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    fallback: list[str] = Field(default_factory=list, max_length=8,
                                description="channels to try, in order, when this one fails")
    template: str | None = Field(None, description="template set for this channel")
    allow_private_targets: bool = Field(
        False, description="let the egress guard connect this channel to private, loopback "
        "and link-local addresses (an intranet, a local test server); only this file can")


def _label_text(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _label_values(value: object) -> object:
    """``team: ml`` or ``team: [ml, data]``; numbers and booleans are compared as text."""
    if not isinstance(value, dict):
        return value
    return {
        key: [_label_text(v) for v in values] if isinstance(values, list) else [_label_text(values)]
        for key, values in value.items()
    }


def _default_outcomes() -> list[Outcome]:
    return ["succeeded", "failed"]


class Match(Section):
    """Which tasks a standing subscription gets. Empty lists match everything."""

    agents: list[str] = Field(default_factory=list)
    labels: Annotated[dict[str, list[str]], BeforeValidator(_label_values)] = Field(
        default_factory=dict, description="label -> value (or list of accepted values)")
    outcomes: list[Outcome] = Field(default_factory=_default_outcomes, min_length=1)


class Destination(Section):
    """Where to deliver: a channel and a target (default: the subscription's ``targets``).

    Written as an object, or as text: a channel name (``slack``), ``CHANNEL:TARGET``
    (``slack:#ml-alerts``) or an email address.
    """

    channel: str
    target: TargetText | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if CHANNEL_NAME.match(text):
            return {"channel": text}
        parsed = Subscription.parse(text)
        return {"channel": parsed.channel, "target": parsed.target}


class StandingSubscription(Section):
    """A subscription of the configuration: every matching task is delivered to it.

    ``notify`` lists the destinations (each delivered on its own); ``channel`` with
    ``target`` is a shorthand for a single one.
    """

    name: str
    match: Match = Field(default_factory=Match)
    targets: dict[str, TargetText] = Field(
        default_factory=dict, description="who: this subscriber's target on each channel")
    channel: str | None = Field(None, description="shorthand: notify: [{channel, target}]")
    target: TargetText | None = None
    notify: list[Destination] = Field(default_factory=list, max_length=32)
    fallback: list[Destination] | None = Field(
        None, max_length=8, description="overrides the channels' configured fallback")
    template: str | None = None

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"name {v!r} must be letters, digits, '.', '-' or '_' "
                             "(at most 64, starting with a letter or digit)")
        return v

    @model_validator(mode="after")
    def _shorthand(self) -> StandingSubscription:
        if self.channel is not None:
            shorthand = Destination(channel=self.channel, target=self.target)
            if self.notify and self.notify != [shorthand]:  # (equal: validated before)
                raise ValueError("give either channel: (with target:) or notify:, not both")
            self.notify = [shorthand]
        elif self.target is not None:
            raise ValueError("target: needs channel: beside it (or use notify:)")
        if not self.notify:
            raise ValueError("say where to deliver: notify: [{channel: ..., target: ...}] "
                             "(or channel: with target:)")
        return self

    def target_for(self, destination: Destination) -> Target | None:
        """The destination with its target filled in from ``targets`` (None: no target)."""
        target = destination.target or self.targets.get(destination.channel)
        if target is None:
            return None
        return Target(channel=destination.channel, target=target, options=destination.options)


class GatewayConfig(Section):
    """The whole configuration. Build it with :func:`load_config` or :func:`parse_config`."""

    agents: dict[str, AgentConfig] = Field(default_factory=lambda: {"default": AgentConfig()})
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    subscriptions: list[StandingSubscription] = Field(default_factory=list)
    templates: dict[str, TemplateSet] = Field(default_factory=dict)
    api: ApiConfig = Field(default_factory=ApiConfig)
    hooks: dict[str, HookSource] = Field(default_factory=dict)

    _source: str = PrivateAttr(default="<config>")

    @property
    def source(self) -> str:
        """The file this configuration was read from, as given."""
        return self._source

    def secret_values(self) -> tuple[str, ...]:
        """Every value taken from the environment (long enough to redact), longest first."""
        return self._secrets

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``[redacted]``."""
        return redactor(self._secrets)(text)

    def agent(self, name: str) -> AgentConfig:
        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents))
            raise TaskInputError(f"unknown agent {name!r}; known: {known}") from None

    def channel_instances(self) -> dict[str, tuple[str, dict[str, Any], RetryPolicy | None]]:
        """``name -> (plugin, options, retry)``, for ``Channels.from_plugins(configured=...)``."""
        return {
            name: (channel.plugin or name, dict(channel.options), channel.retry)
            for name, channel in self.channels.items()
        }

    def channel_fallbacks(self) -> dict[str, list[str]]:
        """``channel -> fallback channel names``, for :func:`gateway.core.routing.route`."""
        return {name: list(c.fallback) for name, c in self.channels.items() if c.fallback}

    def channel_templates(self) -> dict[str, str]:
        """``channel -> template set name``, for :class:`gateway.channels.render.Renderer`."""
        return {name: c.template for name, c in self.channels.items() if c.template}

    def route(self, task: Task) -> list[Subscription]:
        """The standing subscriptions ``task`` gets (see :func:`gateway.core.routing.route`)."""
        from gateway.core import route

        return route(task, self.subscriptions, self.channel_fallbacks())

    def summary(self) -> str:
        def count(n: int, what: str) -> str:
            return f"{n} {what}{'' if n == 1 else 's'}"

        return ", ".join([
            count(len(self.agents), "agent"),
            count(len(self.channels), "channel"),
            count(len(self.subscriptions), "subscription"),
            count(len(self.templates), "template"),
        ])

    def _hide(self, secrets: Sequence[str]) -> None:
        values = tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH},
                              key=lambda s: (-len(s), s)))
        for model in _models(self):
            model._secrets = values


def _models(value: object) -> Iterator[Section]:
    if isinstance(value, Section):
        yield value
        for name in type(value).model_fields:
            yield from _models(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _models(item)
    elif isinstance(value, list):
        for item in value:
            yield from _models(item)
