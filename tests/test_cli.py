"""The `gateway` command line, against the real server (and `gateway up` as a real process)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.app import app
from gateway.core import TaskState
from gateway.durable import GatewayClient
from gateway.local import LocalEngine, WebhookReceiver, free_port
from tests.conftest import TEST_ENV
from tests.support.process import wait_until

runner = CliRunner()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.mark.restate
def test_submit_wait_subscribe_status(gateway: str, restate_server: LocalEngine,
                                      webhook_receiver: WebhookReceiver) -> None:
    ingress = ["--ingress-url", restate_server.ingress_url]
    task_id = new_id("cli")
    hook = f"webhook:{webhook_receiver.url}/hooks/{task_id}"
    r = runner.invoke(app, ["submit", "Draft the release notes", "--task-id", task_id,
                            "--notify", hook, "--label", "team=docs", "--wait", "--timeout", "60",
                            *ingress])
    assert r.exit_code == 0, r.output
    assert f"task {task_id} started" in r.output
    assert "succeeded" in r.output and "delivered" in r.output

    r = runner.invoke(app, ["submit", "Draft the release notes", "--task-id", task_id, *ingress])
    assert r.exit_code == 0
    assert "submitted before: it runs once" in r.output

    r = runner.invoke(app, ["subscribe", task_id, f"{task_id}@example.com", *ingress])
    assert r.exit_code == 0, r.output
    assert "subscribed email:" in r.output

    with GatewayClient(restate_server.ingress_url) as client:
        assert wait_until(lambda: len(client.status(task_id).deliveries) == 2
                          and all(d.state.final for d in client.status(task_id).deliveries), 20)
    r = runner.invoke(app, ["status", task_id, "--json", *ingress])
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["state"] == "succeeded" and doc["labels"] == {"team": "docs"}
    assert sorted(d["channel"] for d in doc["deliveries"]) == ["email", "webhook"]


@pytest.mark.restate
def test_status_of_unknown_task_exits_1(gateway: str, restate_server: LocalEngine) -> None:
    r = runner.invoke(app, ["status", new_id("nope"), "--ingress-url", restate_server.ingress_url])
    assert r.exit_code == 1
    assert "no task" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "x", "--notify", "not-an-address"],
         "neither an email address nor CHANNEL:TARGET"),
        (["submit", "   "], "the prompt is empty"),
        (["submit", "x", "--label", "novalue"], "KEY=VALUE"),
        (["subscribe", "t1", "::"], "neither an email address"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    r = runner.invoke(app, [*args, "--ingress-url", "http://127.0.0.1:9"])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1


def test_unreachable_ingress_says_so() -> None:
    r = subprocess.run([sys.executable, "-m", "gateway", "status", "t1", "--ingress-url",
                        f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert "cannot reach the Restate ingress" in r.stderr
    assert "Traceback" not in r.stderr


def test_channels_lists_every_plugin_with_its_distribution() -> None:
    r = runner.invoke(app, ["channels"], terminal_width=200)
    assert r.exit_code == 0
    for name in ("email", "webhook", "slack", "sms", "apprise"):
        assert f"gateway-channel-{name}" in r.output


def test_up_with_a_port_in_use_says_which(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "gateway", "up", "--data-dir", str(tmp_path / "data"),
             "--ingress-port", str(port), "--admin-port", str(free_port()),
             "--node-port", str(free_port()), "--service-port", str(free_port()),
             "--api-port", str(free_port())],
            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 1
    assert f"port {port} (ingress)" in r.stderr and "--ingress-port" in r.stderr


def test_up_without_the_server_binary_says_how_to_fix(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "gateway", "up", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env={**os.environ, "RESTATE_SERVER_BIN": str(tmp_path / "missing")})
    assert r.returncode == 1
    assert "restate-server binary" in r.stderr and "npm ci" in r.stderr


class UpProcess:
    def __init__(self, tmp: Path, config: Path, ports: dict[str, int]) -> None:
        self.ports = ports
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "up", "--config", str(config),
             "--data-dir", str(tmp / "restate-data"),
             *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port)))],
            cwd=tmp, env={**os.environ, **TEST_ENV}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "press Ctrl-C" in line:
                self.ready.set()

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(60)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


@pytest.mark.slow
def test_up_serves_registers_prints_urls_and_a_restart_keeps_the_data(
    tmp_path: Path, config_file: Path, webhook_receiver: WebhookReceiver
) -> None:
    ports = {name: free_port() for name in ("ingress", "admin", "node", "service", "api")}
    up = UpProcess(tmp_path, config_file, ports)
    try:
        assert up.ready.wait(90), "\n".join(up.lines)
        text = "\n".join(up.lines)
        assert f"http://localhost:{ports['ingress']}" in text
        assert f"http://localhost:{ports['admin']}/ui" in text
        task_id = new_id("up")
        with GatewayClient(f"http://127.0.0.1:{ports['ingress']}") as client:
            from gateway.core import Subscription, TaskRequest

            client.submit(task_id, TaskRequest(prompt="Persist me", subscriptions=[
                Subscription.parse(f"webhook:{webhook_receiver.url}/hooks/{task_id}")]))
            assert client.wait(task_id, 60).state is TaskState.SUCCEEDED
    finally:
        code = up.interrupt()
    assert code == 0, "\n".join(up.lines)
    assert "stopped" in "\n".join(up.lines)
    # everything is stopped: the ports are free again
    for port in ports.values():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))

    again = UpProcess(tmp_path, config_file, ports)
    try:
        assert again.ready.wait(90), "\n".join(again.lines)
        with GatewayClient(f"http://127.0.0.1:{ports['ingress']}") as client:
            status = client.status(task_id)
        assert status.state is TaskState.SUCCEEDED
        assert [d.state.value for d in status.deliveries] == ["delivered"]
    finally:
        assert again.interrupt() == 0
