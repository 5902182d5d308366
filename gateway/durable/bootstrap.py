"""Builds a process's runtime from the configuration: the one place set-up happens."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.channels import ChannelPlugin, Channels, Renderer, discover_plugins
from gateway.core import ConfigError, RetryPolicy, secret_values
from gateway.durable.agent import AgentSpec, build_agent
from gateway.durable.runtime import Runtime, install_runtime, redactor
from gateway.observability import set_redactor

if TYPE_CHECKING:
    from gateway.config import AgentConfig, GatewayConfig

__all__ = ["build_runtime", "runtime_for", "runtime_from_config"]

log = logging.getLogger("gateway.bootstrap")


def build_runtime(
    *,
    plugins: Mapping[str, ChannelPlugin] | None = None,
    channel_overrides: Mapping[str, tuple[str, Mapping[str, Any], RetryPolicy | None]]
    | None = None,
    agents: list[AgentSpec] | None = None,
    secrets: list[str] | None = None,
    public_url: str | None = None,
    private_targets: Collection[str] = (),
) -> Runtime:
    """A runtime without a configuration file: plugins (discovered unless given), channel
    instances, agents (an offline ``default`` one at least); ``private_targets``: channels
    the egress guard lets reach private addresses."""
    found = discover_plugins() if plugins is None else plugins
    specs = {spec.name: spec for spec in (agents or [])}
    specs.setdefault("default", AgentSpec("default"))
    channels = Channels.from_plugins(found, channel_overrides or {},
                                     private_targets=private_targets)
    return Runtime(
        channels=channels,
        agents={name: build_agent(spec) for name, spec in specs.items()},
        redact=redactor([*(secrets or []), *channels.secret_values()]),
        public_url=public_url,
    )


def runtime_for(config: GatewayConfig, plugins: Mapping[str, ChannelPlugin], *,
                channel_overrides: Mapping[str, tuple[str, Mapping[str, Any],
                                                      RetryPolicy | None]] | None = None,
                shared: Channels | None = None, public_url: str | None = None) -> Runtime:
    """The runtime of a loaded configuration. ``shared``: reuse its plugin instances (and so
    their pooled clients) - used when reloading."""
    configured = {**config.channel_instances(), **(channel_overrides or {})}
    specs = [_agent_spec(name, a) for name, a in config.agents.items()]
    channels = Channels.from_plugins(
        plugins, configured, shared=shared,
        private_targets={n for n, c in config.channels.items() if c.allow_private_targets})
    # one redaction set: ${ENV} values, secret fields of the file (hooks, channel options,
    # agents' api_key) and what plugins read from the environment themselves (SMTP_PASSWORD...)
    secrets = [*config.secret_values(), *secret_values(config), *channels.secret_values()]
    return Runtime(
        channels=channels,
        agents={spec.name: build_agent(spec) for spec in specs},
        renderer=Renderer.from_config(config),
        redact=redactor(secrets),
        route=config.route,
        public_url=public_url,
        open_channels=None if config.api.channels is None else frozenset(config.api.channels),
    )


def _agent_spec(name: str, a: AgentConfig) -> AgentSpec:
    return AgentSpec(name, a.model, a.instructions, a.deadline, a.max_attempts, a.timeout,
                     base_url=a.base_url,
                     api_key=a.api_key.get_secret_value() if a.api_key else None,
                     temperature=a.temperature, max_tokens=a.max_tokens,
                     request_timeout=a.request_timeout)


def runtime_from_config(path: Path | None) -> tuple[Runtime, Callable[[], None]]:
    """The runtime of ``gateway up``/``serve`` from ``--config``/``$GATEWAY_CONFIG``/the
    default file, and what SIGHUP should do: reload it, keeping the old one if it is invalid.
    Tasks already routed keep their routing: routing is journaled by ``run``."""
    from gateway.config import DEFAULT_CONFIG_PATH, load_config, resolve_config_path

    plugins = discover_plugins()
    config_path = resolve_config_path(path)
    if path is None and config_path == DEFAULT_CONFIG_PATH and not config_path.exists():
        runtime = build_runtime(plugins=plugins)
    else:
        runtime = runtime_for(load_config(config_path, plugins=plugins), plugins)
    set_redactor(runtime.redact)  # log lines and spans lose the configured secrets
    state = {"runtime": runtime}

    def reload() -> None:
        try:
            config = load_config(config_path, plugins=plugins)
        except ConfigError as exc:
            log.error("configuration reload refused; keeping the running one: %s",
                      "; ".join(exc.errors))
            return
        state["runtime"] = runtime_for(config, plugins, shared=state["runtime"].channels)
        install_runtime(state["runtime"])
        set_redactor(state["runtime"].redact)
        log.warning("configuration reloaded from %s: %s", config_path, config.summary())

    return runtime, reload
