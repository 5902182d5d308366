"""The gateway's Restate endpoint: the ASGI app and how it is served.

hypercorn's defaults stall under load (stream and keep-alive limits), so they are raised,
as the Restate SDK's own harness does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import restate
from hypercorn.asyncio import serve
from hypercorn.config import Config

from gateway.durable.runtime import Runtime, install_runtime
from gateway.durable.task_index import index as task_index
from gateway.durable.workflow import deliveries, workflow

__all__ = ["create_app", "hypercorn_config", "serve_app"]

UNLIMITED = 2_147_483_647


def create_app(runtime: Runtime, identity_keys: Sequence[str] | None = None) -> Any:
    """The Restate ASGI app serving the workflow and the receipts object, with ``runtime``
    installed for its handlers. ``identity_keys`` makes it verify the server's requests."""
    install_runtime(runtime)
    keys = list(identity_keys or []) or None
    return restate.app(services=[workflow, deliveries, task_index], identity_keys=keys)


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.h2_max_concurrent_streams = UNLIMITED
    config.keep_alive_max_requests = UNLIMITED
    config.keep_alive_timeout = UNLIMITED
    config.graceful_timeout = 5.0
    config.shutdown_timeout = 5.0
    config.accesslog = None
    config.errorlog = None
    return config


async def serve_app(app: Any, host: str, port: int, shutdown: asyncio.Event) -> None:
    """Serve ``app`` until ``shutdown`` is set."""
    await serve(app, hypercorn_config(host, port), shutdown_trigger=shutdown.wait)
