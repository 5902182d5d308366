"""``gateway demo``: one sample task, two subscribers on local channels, end to end.

Everything runs on loopback: a restate-server started for the demo (in ``gateway up``'s data
directory and ports, so its console shows the task afterwards; temporary data when a
``gateway up`` is running), the gateway endpoint, an SMTP mailbox and a webhook receiver that
verifies signatures. The demo shows each delivery as it arrives and exits 0 once both
arrived, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from gateway.core import RetryPolicy, Subscription, TaskRequest
from gateway.durable import GatewayClient, build_runtime
from gateway.local.engine import LocalEngine, port_in_use
from gateway.local.event_loop import run_serving
from gateway.local.ports import free_port
from gateway.local.security_warnings import DEMO_WEBHOOK_SECRET
from gateway.local.server import ServeOptions, serve_gateway
from gateway.local.sinks import Mailbox, ReceivedWebhook, WebhookReceiver

__all__ = ["run_demo"]

DEMO_PROMPT = "Write a short poem about tasks that finish while nobody waits"


#: where ``gateway up`` keeps its data, on its ports: the demo's task is then in its console
UP_DATA = Path(".gateway/restate")
UP_PORTS = (8080, 9070, 5122)


def _engine() -> tuple[LocalEngine, Path | None]:
    """The demo's restate-server: in ``gateway up``'s data directory on its ports when they
    are free (so ``gateway up`` shows the demo's task afterwards), else on free ports with
    temporary data (the second value: the directory to remove)."""
    env = {"RESTATE_LOG_FILTER": "warn"}
    if not any(port_in_use("127.0.0.1", port) for port in UP_PORTS):
        ingress, admin, node = UP_PORTS
        return LocalEngine(base_dir=UP_DATA.resolve(), ingress_port=ingress, admin_port=admin,
                           node_port=node, env=env), None
    base = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    return LocalEngine(base_dir=base, ingress_port=free_port(), admin_port=free_port(),
                       node_port=free_port(), env=env), base


def run_demo(out: Console, *, timeout: float = 60.0) -> int:
    engine, base = _engine()
    mailbox = Mailbox().start()
    receiver = WebhookReceiver(secret=DEMO_WEBHOOK_SECRET).start()
    arrived = threading.Event()
    seen: list[str] = []

    def on_mail(msg: Any) -> None:
        seen.append("email")
        subject = escape(str(msg["Subject"]))
        out.print(f"[green]✔ email delivered[/] to {msg['X-Envelope-To']}: {subject}")
        if len(seen) >= 2:
            arrived.set()

    def on_webhook(hook: ReceivedWebhook) -> None:
        if hook.verified:
            seen.append("webhook")
            body = hook.json()
            out.print(f"[green]✔ webhook delivered[/] (signature verified, webhook-id "
                      f"{hook.headers.get('webhook-id')}): {body.get('type')} "
                      f"{escape(str(body.get('output'))[:80])}")
            if len(seen) >= 2:
                arrived.set()

    mailbox.on_item = on_mail
    receiver.on_item = on_webhook
    fast = RetryPolicy(max_attempts=5, initial_interval=0.5, max_interval=5)
    runtime = build_runtime(channel_overrides={
        "email": ("email", {"host": "127.0.0.1", "port": mailbox.port, "tls": "none",
                            "from_addr": "demo-gateway@example.com"}, fast),
        "webhook": ("webhook", {"secret": DEMO_WEBHOOK_SECRET, "allow_private_targets": True},
                    fast),
    }, secrets=[DEMO_WEBHOOK_SECRET], private_targets={"email", "webhook"})
    options = ServeOptions(port=free_port(), register_with=None)
    try:
        out.print("[bold]starting[/] restate-server ("
                  + (f"data in {UP_DATA}" if base is None else "temporary data: `gateway up` "
                     "is running") + ") ...")
        engine.start()
        options.register_with = engine.admin_url
        return run_serving(_drive(out, runtime, options, engine, mailbox, receiver, arrived,
                                  timeout, kept=base is None))
    finally:
        receiver.stop()
        mailbox.stop()
        engine.stop()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)


async def _drive(out: Console, runtime: Any, options: ServeOptions, engine: LocalEngine,
                 mailbox: Mailbox, receiver: WebhookReceiver, arrived: threading.Event,
                 timeout: float, *, kept: bool) -> int:
    stop = asyncio.Event()
    ready = asyncio.Event()
    server = asyncio.create_task(serve_gateway(runtime, options, on_ready=ready.set, stop=stop))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        out.print(f"[bold]gateway[/] serving at {options.service_url}, registered with "
                  f"{engine.admin_url}")
        task_id = f"demo-{uuid.uuid4().hex[:8]}"
        subscribers = [Subscription.parse("team@example.com"),
                       Subscription.parse(f"webhook:{receiver.url}/hooks/agent-results")]
        request = TaskRequest(prompt=DEMO_PROMPT, subscriptions=subscribers)
        with GatewayClient(engine.ingress_url) as client:
            await asyncio.to_thread(client.submit, task_id, request)
            out.print(f"[bold]submitted[/] task {task_id} with 2 subscribers "
                      "(email team@example.com, signed webhook); waiting up to "
                      f"{timeout:g}s for both deliveries ...")
            started = time.monotonic()
            ok = await asyncio.to_thread(arrived.wait, timeout)
            status = await asyncio.to_thread(client.wait, task_id, 10.0)
        if not ok:
            out.print(f"[red]✘ not every delivery arrived within {timeout:g}s[/]: "
                      + "; ".join(f"{d.channel} {d.state.value} ({d.last_error or 'no error'})"
                                  for d in status.deliveries))
            return 1
        out.print(f"[bold]done[/] in {time.monotonic() - started:.1f}s: task {status.state.value}, "
                  f"result: {escape(status.output or '')}")
        if kept:
            out.print(f"[bold]console[/]: the task stays in {UP_DATA}; run `.venv/bin/gateway "
                      f"up` and open http://127.0.0.1:8000/console/tasks/{task_id} (sign in "
                      "with the key it prints)", soft_wrap=True)
        return 0
    finally:
        stop.set()
        await server
