"""Serving a gateway process: the Restate endpoint, registration, signals, clean shutdown."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from restate.server import install_shutdown_hook

from gateway.engine import register_deployment
from gateway.errors import EngineError
from gateway.runtime import Runtime
from gateway.service import create_app, serve_app

__all__ = ["ServeOptions", "serve_gateway"]


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 9080
    #: Restate admin API to register with once serving (None: someone else registers)
    register_with: str | None = None
    #: the URL the Restate server uses to reach this endpoint (default: http://host:port)
    advertised_url: str | None = None
    identity_keys: Sequence[str] = field(default_factory=list)

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


async def serve_gateway(
    runtime: Runtime,
    options: ServeOptions,
    *,
    on_ready: Callable[[], None] | None = None,
    on_reload: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop``); SIGHUP calls ``on_reload``."""
    if not _port_free(options.host, options.port):
        raise EngineError(
            f"port {options.port} on {options.host} (gateway endpoint) is in use: stop what "
            "listens there or pick another with --service-port"
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # the Restate app installs its own SIGTERM dispatcher on its first request (to end open
    # invocation streams gracefully); a hook there coexists with it, a plain handler would not
    install_shutdown_hook(loop, stop.set, signal.SIGTERM)
    if on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_reload)
    app = create_app(runtime, options.identity_keys)
    server = asyncio.create_task(serve_app(app, options.host, options.port, stop))
    try:
        await _wait_listening(options.host, options.port)
        if options.register_with:
            await asyncio.to_thread(register_deployment, options.register_with, options.service_url)
        if on_ready is not None:
            on_ready()
        await server
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await server
        for sig in (signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runtime.channels.aclose()
