"""The CLI through the API (--api-url/--api-key), the API client, ``gateway api-key``, and a
real ``gateway serve`` process serving both ports and stopping on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gateway.api import hash_key
from gateway.cli.app import app
from gateway.core import DeliveryState, Subscription, TaskRequest, TaskState, UserInputError
from gateway.durable import ApiClient
from gateway.local import LocalEngine, WebhookReceiver, free_port
from tests.api.conftest import API_ENV, KEYS
from tests.api.helpers import new_id
from tests.support.service import listening, wait_listening

pytestmark = pytest.mark.restate

runner = CliRunner()


def test_submit_subscribe_and_status_through_the_api(
    api_url: str, webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("cli")
    env = {"GATEWAY_API_URL": api_url, "GATEWAY_API_KEY": KEYS.full}
    r = runner.invoke(app, ["submit", "Plan the sprint", "--task-id", task_id, "--wait",
                            "--timeout", "30"], env=env)
    assert r.exit_code == 0, r.output
    assert f"task {task_id} started" in r.output and "state succeeded" in r.output
    again = runner.invoke(app, ["submit", "Plan the sprint", "--task-id", task_id], env=env)
    assert "was submitted before" in again.output

    target = f"webhook:{webhook_receiver.url}/hooks/{task_id}"
    r = runner.invoke(app, ["subscribe", task_id, target], env=env)
    assert r.exit_code == 0 and "subscribed webhook:" in r.output, r.output
    r = runner.invoke(app, ["status", task_id, "--json"], env=env)
    assert r.exit_code == 0 and json.loads(r.output)["state"] == "succeeded"

    missing = runner.invoke(app, ["status", new_id("never"), "--api-url", api_url,
                                  "--api-key", KEYS.full])
    assert missing.exit_code == 1
    no_key = runner.invoke(app, ["status", task_id, "--api-url", api_url],
                           env={"GATEWAY_API_KEY": ""})
    assert no_key.exit_code == 2 and "needs an API key" in no_key.output


def test_api_client(api_url: str) -> None:
    task_id = new_id("client")
    with ApiClient(api_url, KEYS.full) as client:
        request = TaskRequest(prompt="Slowly", agent="slow",
                              subscriptions=[Subscription.parse(f"{task_id}@example.com")])
        assert client.submit(task_id, request).new
        assert not client.submit(task_id, request).new
        assert client.status(task_id).state is TaskState.RUNNING
        deadline = time.monotonic() + 10
        waiting = client.status(task_id)
        while not waiting.deliveries and time.monotonic() < deadline:
            time.sleep(0.05)
            waiting = client.status(task_id)
        [receipt] = waiting.deliveries
        assert client.cancel(task_id, receipt.subscription_id).state is DeliveryState.CANCELLED
        with pytest.raises(UserInputError, match="unknown channel 'nope'"):
            client.subscribe(task_id, "nope:x")
    with ApiClient(api_url, KEYS.reader) as reader, pytest.raises(UserInputError, match="scope"):
        reader.submit(new_id("client"), TaskRequest(prompt="x"))


def test_api_key_command_prints_a_key_and_its_hash() -> None:
    r = runner.invoke(app, ["api-key", "ci", "--scope", "submit", "--scope", "read"])
    assert r.exit_code == 0, r.output
    key = next(line for line in r.output.splitlines() if line.startswith("gwk_"))
    assert f'hash: "{hash_key(key)}", scopes: [submit, read]' in r.output
    bad = runner.invoke(app, ["api-key", "ci", "--scope", "admin"])
    assert bad.exit_code == 2 and "--scope" in bad.output


def test_serve_runs_the_api_and_the_endpoint_and_stops_on_sigterm(
    gateway: str, restate_server: LocalEngine, api_config_file: Path
) -> None:
    api_port, restate_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(api_config_file),
         "--host", "127.0.0.1", "--api-port", str(api_port), "--restate-port", str(restate_port),
         "--restate-ingress-url", restate_server.ingress_url,
         "--restate-admin-url", restate_server.admin_url],
        env={**os.environ, **API_ENV}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        wait_listening(f"http://127.0.0.1:{api_port}", timeout=60)
        assert listening(restate_port)
        r = httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=10)
        assert r.status_code == 200, r.text
        task = httpx.get(f"http://127.0.0.1:{api_port}/v1/tasks/{new_id('never')}",
                         headers={"authorization": f"Bearer {KEYS.reader}"}, timeout=10)
        assert task.status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0, "".join(lines)
    output = "".join(lines)
    assert f"serving the API on 127.0.0.1:{api_port}" in output
    assert KEYS.reader not in output and KEYS.full not in output
