"""The per-process runtime the handlers use: channels, agents, renderer, settings.

Built once at the entry point (``gateway up``/``serve``, or a test fixture) and installed
before the Restate app serves its first request; never built at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gateway.channels import Channels, Renderer, discover_plugins
from gateway.core import Subscription, Task, TaskInputError
from gateway.core import redactor as _redactor
from gateway.durable.agent import AgentRunner, AgentSpec, build_agent

__all__ = ["Runtime", "current_runtime", "install_runtime", "redactor"]


def redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function that replaces every secret value in a text (also URL-encoded) by
    ``[redacted]`` (see :mod:`gateway.core.redaction`)."""
    return _redactor(secrets)


@dataclass
class Runtime:
    channels: Channels
    agents: Mapping[str, AgentRunner]
    renderer: Renderer = field(default_factory=Renderer)
    redact: Callable[[str], str] = field(default=lambda text: text)
    #: standing subscriptions a task gets (from the configuration); pure, journaled by run
    route: Callable[[Task], list[Subscription]] = field(default=lambda task: [])
    #: base URL of the gateway's API, for links in messages (None: no links)
    public_url: str | None = None
    #: channels subscribers that do not come from the YAML file may use (``api.channels``;
    #: None: the channels of the built-in named plugins, see gateway.channels.open_channels)
    open_channels: frozenset[str] | None = None

    async def aopen(self) -> None:
        """Let the channels prepare what their first delivery would pay for (serving only)."""
        await self.channels.aopen()

    async def aclose(self) -> None:
        """Close the channels' and the models' connection pools."""
        await self.channels.aclose()
        for runner in self.agents.values():
            await runner.aclose()

    def agent(self, name: str) -> AgentRunner:
        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents))
            raise TaskInputError(f"unknown agent {name!r}; known: {known}") from None

    @classmethod
    def default(cls) -> Runtime:
        """Every installed channel plugin with default options and the offline default agent."""
        return cls(
            channels=Channels.from_plugins(discover_plugins()),
            agents={"default": build_agent(AgentSpec("default"))},
        )


_current: Runtime | None = None


def install_runtime(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current_runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("the gateway runtime is not installed: call install_runtime() first")
    return _current
