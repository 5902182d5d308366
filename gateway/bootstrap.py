"""Builds a process's runtime from the configuration: the one place set-up happens."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.agent import AgentSpec, build_agent
from gateway.channels import ChannelPlugin, Channels, discover_plugins
from gateway.models import RetryPolicy
from gateway.runtime import Runtime, redactor

__all__ = ["build_runtime"]


def build_runtime(
    *,
    plugins: Mapping[str, ChannelPlugin] | None = None,
    channel_overrides: Mapping[str, tuple[str, Mapping[str, Any], RetryPolicy | None]] | None = None,
    agents: list[AgentSpec] | None = None,
    secrets: list[str] | None = None,
    public_url: str | None = None,
) -> Runtime:
    """Discover the plugins (unless given), configure channels and agents."""
    found = discover_plugins() if plugins is None else plugins
    specs = {spec.name: spec for spec in (agents or [])}
    specs.setdefault("default", AgentSpec("default"))
    return Runtime(
        channels=Channels.from_plugins(found, channel_overrides or {}),
        agents={name: build_agent(spec) for name, spec in specs.items()},
        redact=redactor(secrets or []),
        public_url=public_url,
    )


def runtime_from_config(path: Path | None) -> tuple[Runtime, Callable[[], None] | None]:
    """The runtime of ``gateway up``/``serve``, and what SIGHUP should do (reload)."""
    return build_runtime(), None
