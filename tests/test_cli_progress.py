"""What a person sees in a terminal: the version, live progress, masked targets, 80 columns."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from importlib.metadata import version

import pytest
from rich.console import Console
from typer.testing import CliRunner

from gateway.cli._mask import mask_target
from gateway.cli._progress import follow
from gateway.cli.app import app
from gateway.core import (
    DeliveryReceipt,
    DeliveryState,
    Subscription,
    TaskRequest,
    TaskState,
    TaskStatus,
)
from gateway.durable import GatewayClient
from gateway.local import LocalEngine, Mailbox, WebhookReceiver, free_port
from tests.support.process import wait_until

runner = CliRunner()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_version_prints_the_installed_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"gateway {version('notification-gateway')}"


@pytest.mark.parametrize(
    ("target", "masked"),
    [
        ("me@example.com", "m***@example.com"),
        ("m***@example.com", "m***@example.com"),
        ("https://example.com/hooks/agent", "https://example.com/***"),
        ("https://example.com/hooks?token=x", "https://example.com/***"),
        ("https://example.com", "https://example.com"),
        ("http://127.0.0.1:8123/x", "http://127.0.0.1:8123/***"),
        ("+15550100001", "+15***01"),
        ("#ml-alerts", "#ml-alerts"),
    ],
)
def test_targets_are_masked_for_the_screen(target: str, masked: str) -> None:
    assert mask_target(target) == masked


@pytest.mark.restate
def test_status_masks_targets_unless_show_targets(
    gateway: str, restate_server: LocalEngine, mailbox: Mailbox,
    webhook_receiver: WebhookReceiver,
) -> None:
    task_id = new_id("mask")
    address = f"{task_id}@example.com"
    hook = f"{webhook_receiver.url}/hooks/{task_id}"
    ingress = ["--ingress-url", restate_server.ingress_url]
    r = runner.invoke(app, ["submit", "Mask me", "--task-id", task_id, "--notify", address,
                            "--notify", f"webhook:{hook}", "--wait", "--timeout", "60",
                            *ingress])
    assert r.exit_code == 0, r.output
    assert address not in r.output and hook not in r.output
    assert f"{task_id[0]}***@example.com" in r.output

    def status(*extra: str) -> str:
        r = subprocess.run([sys.executable, "-m", "gateway", "status", task_id, *ingress,
                            *extra], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200"})
        assert r.returncode == 0, r.stderr
        return r.stdout

    shown = status()
    assert f"email:{task_id[0]}***@example.com" in shown
    assert f"webhook:{webhook_receiver.url}/***" in shown
    assert address not in shown and "/hooks/" not in shown

    shown = status("--show-targets")
    assert f"email:{address}" in shown and f"webhook:{hook}" in shown


@pytest.mark.restate
def test_the_status_table_fits_80_columns(gateway: str, restate_server: LocalEngine) -> None:
    task_id = new_id("narrow-" + "x" * 20)
    dead = f"http://127.0.0.1:{free_port()}/hooks/a-rather-long-path/{task_id}"
    with GatewayClient(restate_server.ingress_url) as client:
        client.submit(task_id, TaskRequest(prompt="Fit the table", subscriptions=[
            Subscription.parse(f"{task_id}@example.com"),
            Subscription.parse(f"webhook:{dead}")]))
        status = client.wait(task_id, 60)
    assert [d.state.value for d in status.deliveries] in (["delivered", "failed"],
                                                          ["failed", "delivered"])
    r = subprocess.run([sys.executable, "-m", "gateway", "status", task_id, "--ingress-url",
                        restate_server.ingress_url], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, r.stdout
    # every subscription id whole on its line, the states and the error readable, not cut
    for d in status.deliveries:
        row = next(line for line in lines if line.strip().startswith(d.subscription_id + " "))
        assert d.state.value in row
    flat = " ".join(" ".join(lines).split())
    assert "ConnectError" in flat and "…" not in r.stdout


@pytest.mark.restate
def test_submit_wait_shows_each_subscriber_move_on(
    gateway: str, restate_server: LocalEngine,
) -> None:
    receiver = WebhookReceiver(responses=[503, 503, 503]).start()
    try:
        task_id = new_id("progress")
        r = runner.invoke(app, [
            "submit", "Take your time", "--task-id", task_id, "--agent", "slow",
            "--notify", f"patient-webhook:{receiver.url}/hooks/{task_id}", "--wait",
            "--timeout", "90", "--ingress-url", restate_server.ingress_url])
    finally:
        receiver.stop()
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    who = f"patient-webhook:{receiver.url}/***"
    assert f"task {task_id}: running" in lines
    assert f"task {task_id}: succeeded" in lines
    mine = [line.strip().removeprefix(who + ": ") for line in lines
            if line.strip().startswith(who)]
    assert mine[0] == "waiting for the result", lines
    assert mine[-1] == "delivered (4 attempts)", lines
    retries = [m for m in mine if m.startswith("retrying")]
    assert retries, lines
    assert all(re.fullmatch(r"retrying: attempt (\d) failed, attempt \d (in \d+s|now)", m)
               for m in retries), retries
    assert len(retries) == len(set(m.split(",")[0] for m in retries)), "a line per change"


@pytest.mark.restate
def test_status_follow_follows_a_running_task_to_the_end(
    gateway: str, restate_server: LocalEngine, mailbox: Mailbox,
) -> None:
    task_id = new_id("follow")
    address = f"{task_id}@example.com"
    with GatewayClient(restate_server.ingress_url) as client:
        client.submit(task_id, TaskRequest(prompt="Follow me", agent="slow",
                                           subscriptions=[Subscription.parse(address)]))
        assert wait_until(lambda: client.status(task_id).state is TaskState.RUNNING, 20)
    r = runner.invoke(app, ["status", task_id, "--follow", "--timeout", "60",
                            "--ingress-url", restate_server.ingress_url])
    assert r.exit_code == 0, r.output
    who = f"email:{task_id[0]}***@example.com"
    lines = [line.strip() for line in r.output.splitlines()]
    assert lines[:2] == [f"task {task_id}: running", f"{who}: waiting for the result"], lines
    assert f"{who}: delivered (1 attempt)" in lines
    assert mailbox.wait_for_recipient(address, 1, 10)
    assert lines.index(f"task {task_id}: succeeded") < lines.index(
        f"{who}: delivered (1 attempt)")
    r = runner.invoke(app, ["status", task_id, "--follow", "--json",
                            "--ingress-url", restate_server.ingress_url])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["state"] == "succeeded"
    assert [(d["state"], d["address"]) for d in doc["deliveries"]] == [("delivered", address)]


@pytest.mark.restate
def test_status_follow_of_an_unknown_task_stops_at_once(
    gateway: str, restate_server: LocalEngine,
) -> None:
    started = time.monotonic()
    r = runner.invoke(app, ["status", new_id("nobody"), "--follow",
                            "--ingress-url", restate_server.ingress_url])
    assert r.exit_code == 1
    assert "no task" in r.output
    assert time.monotonic() - started < 20


def _receipt(state: DeliveryState, attempts: int = 0, **extra: float) -> DeliveryReceipt:
    return DeliveryReceipt(subscription_id="s_0123456789abcdef", channel="email",
                           target="j***@example.com", address="jane@example.com", state=state,
                           attempts=attempts, created_at=1.0, updated_at=1.0, **extra)


def test_on_a_terminal_progress_is_a_live_table_that_ends_in_the_last_state() -> None:
    seq = iter([
        TaskStatus(task_id="t1", state=TaskState.RUNNING,
                   deliveries=[_receipt(DeliveryState.WAITING)]),
        TaskStatus(task_id="t1", state=TaskState.SUCCEEDED, deliveries=[
            _receipt(DeliveryState.RETRYING, 1, next_attempt_at=time.time() + 30)]),
        TaskStatus(task_id="t1", state=TaskState.SUCCEEDED,
                   deliveries=[_receipt(DeliveryState.DELIVERED, 2)]),
    ])
    seen: list[TaskStatus] = []
    lock = threading.Lock()

    def status_of() -> TaskStatus:
        with lock:
            seen.append(next(seq))
            return seen[-1]

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80, color_system=None)
    last = follow(status_of, console, timeout=30, interval=0.1)
    assert last.deliveries[0].state is DeliveryState.DELIVERED and len(seen) == 3
    drawn = screen.getvalue()
    assert "waiting for the result" in drawn
    assert re.search(r"retrying: attempt 1 failed,\s+attempt 2 in (29|30)s", drawn)
    assert "j***@example.com" in drawn and "jane@" not in drawn
