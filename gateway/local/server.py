"""Serving a gateway process: the Restate endpoint and the HTTP API (each on its own port,
either or both), registration, signals, clean shutdown."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from restate.server import install_shutdown_hook

from gateway.api import serve_api
from gateway.core import EngineError
from gateway.durable import Runtime, create_app, current_runtime, install_runtime, serve_app
from gateway.local.endpoint import endpoint_server, serve_endpoint
from gateway.local.engine import register_deployment
from gateway.observability.metrics import metrics_app

if TYPE_CHECKING:
    from gateway.api import ApiSettings

__all__ = ["ApiServeOptions", "ServeOptions", "serve_gateway"]


@dataclass
class ApiServeOptions:
    """The HTTP API of a gateway process, and the Restate it talks to."""

    settings: ApiSettings
    ingress_url: str
    admin_url: str
    host: str = "127.0.0.1"
    port: int = 8000
    #: on SIGHUP: the new settings (None: keep the running ones)
    reload: Callable[[], ApiSettings | None] | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 9080
    #: Restate admin API to register with once serving (None: someone else registers)
    register_with: str | None = None
    #: the URL the Restate server uses to reach this endpoint (default: http://host:port)
    advertised_url: str | None = None
    identity_keys: Sequence[str] = field(default_factory=list)
    #: serve the Restate endpoint (False: only the API)
    restate: bool = True
    #: serve the HTTP API too (None: not)
    api: ApiServeOptions | None = None
    #: serve Prometheus /metrics on this port too (for a process without the API, whose
    #: port has /metrics already)
    metrics_port: int | None = None

    @property
    def service_url(self) -> str:
        if self.advertised_url:
            return self.advertised_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"


async def _wait_listening(host: str, port: int, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    while loop.time() < deadline:
        with suppress(OSError):
            _, writer = await asyncio.open_connection(target, port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise EngineError(f"the gateway endpoint did not start listening on {host}:{port}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _check_ports(options: ServeOptions) -> None:
    wanted = []
    if options.restate:
        wanted.append((options.host, options.port, "the gateway's Restate endpoint"))
    if options.api is not None:
        wanted.append((options.api.host, options.api.port, "the API"))
    if options.metrics_port is not None:
        wanted.append((options.host, options.metrics_port, "the metrics endpoint"))
    for host, port, what in wanted:
        if not _port_free(host, port):
            raise EngineError(f"port {port} on {host} ({what}) is in use: stop what listens "
                              "there or pick another port")


async def serve_gateway(
    runtime: Runtime,
    options: ServeOptions,
    *,
    on_ready: Callable[[], None] | None = None,
    on_reload: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop``); SIGHUP calls ``on_reload`` (and reloads the
    API's settings)."""
    from gateway.api import RestateLink, create_api

    _check_ports(options)
    if options.restate:
        endpoint_server()  # a typo in GATEWAY_ENDPOINT_SERVER: one line, before anything starts
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # the Restate app installs its own SIGTERM dispatcher on its first request (to end open
    # invocation streams gracefully); a hook there coexists with it, a plain handler would not
    install_shutdown_hook(loop, stop.set, signal.SIGTERM)
    servers: list[asyncio.Task[None]] = []
    listening: list[tuple[str, int]] = []
    link: RestateLink | None = None
    api = options.api
    opening: asyncio.Task[None] | None = None
    if options.restate:
        app = create_app(runtime, options.identity_keys)
        servers.append(asyncio.create_task(serve_endpoint(app, options.host, options.port,
                                                          stop)))
        listening.append((options.host, options.port))
        # beside the start: what the channels' first deliveries would wait for otherwise
        opening = asyncio.create_task(runtime.aopen())
    else:
        install_runtime(runtime)
    if api is not None:
        link = RestateLink(api.ingress_url, api.admin_url)
        api_app, door = create_api(api.settings, current_runtime, link)
        servers.append(asyncio.create_task(serve_api(api_app, api.host, api.port,
                                                     api.settings.limits, stop)))
        listening.append((api.host, api.port))

        def reload_all() -> None:
            if on_reload is not None:
                on_reload()
            new = api.reload() if api.reload is not None else None
            if new is not None:
                door.settings = new

        loop.add_signal_handler(signal.SIGHUP, reload_all)
    elif on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_reload)
    if options.metrics_port is not None:
        servers.append(asyncio.create_task(serve_app(metrics_app(), options.host,
                                                     options.metrics_port, stop)))
        listening.append((options.host, options.metrics_port))
    try:
        for host, port in listening:
            await _wait_listening(host, port)
        if options.register_with and options.restate:
            await asyncio.to_thread(register_deployment, options.register_with, options.service_url)
        if on_ready is not None:
            on_ready()
        await asyncio.gather(*servers)
    finally:
        stop.set()
        if opening is not None:
            opening.cancel()
        with suppress(asyncio.CancelledError):
            await asyncio.gather(*servers, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if link is not None:
            await link.aclose()
        await runtime.aclose()
