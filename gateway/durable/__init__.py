"""The durable part: the Restate workflow (``run``, ``on_notify``, ``subscribe``, ``status``),
delivery attempts and their retry policy, receipts, the agent runner, the runtime the handlers
use, and the ingress client. Names load on first use: the client stays light to import."""

from typing import TYPE_CHECKING

from gateway.core.lazy import lazy_attribute

if TYPE_CHECKING:
    from gateway.durable.agent import AgentRunner, AgentSpec, build_agent
    from gateway.durable.bootstrap import build_runtime, runtime_for, runtime_from_config
    from gateway.durable.client import ApiClient, GatewayClient, Submitted
    from gateway.durable.runtime import Runtime, current_runtime, install_runtime
    from gateway.durable.service import create_app, serve_app
    from gateway.durable.workflow import RESULT_PROMISE, deliveries

__all__ = [
    "RESULT_PROMISE",
    "AgentRunner",
    "AgentSpec",
    "ApiClient",
    "GatewayClient",
    "Runtime",
    "Submitted",
    "build_agent",
    "build_runtime",
    "create_app",
    "current_runtime",
    "deliveries",
    "install_runtime",
    "runtime_for",
    "runtime_from_config",
    "serve_app",
]

_WHERE = {
    "AgentRunner": "agent", "AgentSpec": "agent", "build_agent": "agent",
    "build_runtime": "bootstrap", "runtime_for": "bootstrap", "runtime_from_config": "bootstrap",
    "ApiClient": "client", "GatewayClient": "client", "Submitted": "client",
    "Runtime": "runtime", "current_runtime": "runtime", "install_runtime": "runtime",
    "create_app": "service", "serve_app": "service",
    "RESULT_PROMISE": "workflow", "deliveries": "workflow",
}


def __getattr__(name: str) -> object:
    return lazy_attribute(__name__, _WHERE, name)


def __dir__() -> list[str]:
    return sorted(__all__)
