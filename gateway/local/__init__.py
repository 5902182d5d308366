"""Running it: the local engine (an embedded restate-server), serving the gateway, the local
mailbox and webhook receiver, the demo. Names load on first use."""

from typing import TYPE_CHECKING

from gateway.core.lazy import lazy_attribute

if TYPE_CHECKING:
    from gateway.local.demo import run_demo
    from gateway.local.engine import (
        LocalEngine,
        find_server_binary,
        port_in_use,
        register_deployment,
    )
    from gateway.local.event_loop import run_serving
    from gateway.local.ports import free_port
    from gateway.local.security_warnings import DEMO_WEBHOOK_SECRET
    from gateway.local.server import ApiServeOptions, ServeOptions, serve_gateway
    from gateway.local.sinks import Mailbox, ReceivedWebhook, WebhookReceiver

__all__ = [
    "DEMO_WEBHOOK_SECRET",
    "ApiServeOptions",
    "LocalEngine",
    "Mailbox",
    "ReceivedWebhook",
    "ServeOptions",
    "WebhookReceiver",
    "find_server_binary",
    "free_port",
    "port_in_use",
    "register_deployment",
    "run_demo",
    "run_serving",
    "serve_gateway",
]

_WHERE = {
    "run_demo": "demo", "run_serving": "event_loop",
    "LocalEngine": "engine", "find_server_binary": "engine", "register_deployment": "engine",
    "free_port": "ports", "port_in_use": "engine",
    "DEMO_WEBHOOK_SECRET": "security_warnings",
    "ApiServeOptions": "server", "ServeOptions": "server", "serve_gateway": "server",
    "Mailbox": "sinks", "ReceivedWebhook": "sinks", "WebhookReceiver": "sinks",
}


def __getattr__(name: str) -> object:
    return lazy_attribute(__name__, _WHERE, name)


def __dir__() -> list[str]:
    return sorted(__all__)
