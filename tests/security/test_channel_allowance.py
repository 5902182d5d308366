"""Subscribers that do not come from the YAML file (API callers, the Restate ingress) use only
the channels, options and targets the operator allowed: the issue's Apprise SSRF against the
Restate admin API, caller-chosen method/headers/fields, options that would widen the egress
guard, and a forged "standing" subscription are all refused, and the loopback listener they
aim at counts no connection. ``gateway up`` warns about demo-only settings; ``deploy/`` ships
none of them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.core import DeliveryState, TaskRequest, TaskState
from gateway.durable import GatewayClient
from gateway.local import DEMO_WEBHOOK_SECRET, free_port
from tests.conftest import ENGINE_MODES
from tests.security.guarded_gateway import Guarded, api_for, guarded_gateway, point_names_at

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "AsyncNotificationsAgent"


@pytest.fixture(scope="module", params=ENGINE_MODES)
def guarded(request: pytest.FixtureRequest) -> Iterator[Guarded]:
    with guarded_gateway(request.param == "always-replay") as running:
        yield running


@pytest.fixture(scope="module")
def apprise_open_api(guarded: Guarded) -> Iterator[str]:
    """An API whose YAML file opens the raw apprise channel to callers (api.channels)."""
    with api_for(guarded, ["email", "webhook", "apprise"]) as url:
        yield url


def admin_ssrf(port: int) -> str:
    """The issue's subscriber: Apprise's json:// posting a deployment to Restate's admin API."""
    return (f"apprise:json://127.0.0.1:{port}/deployments?:uri=http://127.0.0.1:18099/x"
            "&:version=&:title=&:message=&:attachments=&:type=")


def _task_id() -> str:
    return f"allow-{uuid.uuid4().hex[:12]}"


def _post_task(api: str, guarded: Guarded, subscriptions: list[object],
               **extra: object) -> httpx.Response:
    body = {"task_id": _task_id(), "prompt": "Report", "subscriptions": subscriptions, **extra}
    return httpx.post(f"{api}/v1/tasks", json=body, headers=guarded.headers, timeout=30)


def _unprocessable(response: httpx.Response, *says: str) -> str:
    assert response.status_code == 422, response.text
    message = json.dumps(response.json())
    for text in says:
        assert text in message, message
    return message


# -- the API: 422 before anything starts --------------------------------------------------


def test_raw_apprise_is_closed_to_api_callers_by_default(guarded: Guarded) -> None:
    before = guarded.counter.connections
    response = _post_task(guarded.api_url, guarded, [admin_ssrf(guarded.counter.port)])
    _unprocessable(response, "channel 'apprise' is not open", "open: email, lab-email, slack, "
                   "sms, webhook")
    added = httpx.post(f"{guarded.api_url}/v1/tasks/{_task_id()}/subscriptions",
                       json=admin_ssrf(guarded.counter.port), headers=guarded.headers, timeout=30)
    _unprocessable(added, "channel 'apprise' is not open")
    fallback = _post_task(guarded.api_url, guarded, [{
        "channel": "email", "target": "a@example.com",
        "fallback": [{"channel": "apprise", "target": "json://example.com/"}]}])
    _unprocessable(fallback, "channel 'apprise' is not open")
    assert guarded.counter.connections == before


@pytest.mark.parametrize(("query", "named"), [
    ("?method=PUT", "method=PUT"),
    ("?+X-Some-Header=1", "+X-Some-Header"),
    ("?-token=", "-token"),
    ("?:uri=http://127.0.0.1:18099/x&:version=", ":uri"),
])
def test_an_open_apprise_channel_still_refuses_caller_chosen_requests(
        guarded: Guarded, apprise_open_api: str, query: str, named: str) -> None:
    response = _post_task(apprise_open_api, guarded,
                          [f"apprise:json://apprise.example.com/notify{query}"])
    _unprocessable(response, named, "operator's to choose")


def test_an_open_apprise_channel_refuses_a_loopback_target_at_once(
        guarded: Guarded, apprise_open_api: str) -> None:
    before = guarded.counter.connections
    response = _post_task(apprise_open_api, guarded,
                          [f"apprise:json://127.0.0.1:{guarded.counter.port}/deployments"])
    _unprocessable(response, "127.0.0.1 is a loopback address")
    assert guarded.counter.connections == before


def test_the_workflow_holds_its_own_allowance_whatever_the_api_let_through(
        guarded: Guarded, apprise_open_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An API with a wider api.channels than the gateway behind it (two configurations out of
    step): the run itself refuses the subscriber, nothing connects."""
    point_names_at(monkeypatch, guarded.counter.port, "apprise.test")
    before = guarded.counter.connections
    task_id = _task_id()
    response = httpx.post(f"{apprise_open_api}/v1/tasks", headers=guarded.headers, timeout=30,
                          json={"task_id": task_id, "prompt": "Report",
                                "subscriptions": ["apprise:json://apprise.test/notify"]})
    assert response.status_code == 201, response.text
    with GatewayClient(guarded.ingress) as client:
        status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.FAILED and status.deliveries == []
    assert status.error and "channel 'apprise' is not open" in status.error
    assert guarded.counter.connections == before


@pytest.mark.parametrize(("url", "says"), [
    ("http://[64:ff9b::7f00:1]:PORT/agent", "loopback (NAT64 127.0.0.1)"),
    ("http://[2002:7f00:1::]:PORT/agent", "loopback (6to4 127.0.0.1)"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/agent", "Teredo"),
    ("http://100.64.0.7/agent", "shared (CGNAT)"),
])
def test_callback_urls_embedding_private_addresses_are_refused(
        guarded: Guarded, url: str, says: str) -> None:
    url = url.replace("PORT", str(guarded.counter.port))
    response = _post_task(guarded.api_url, guarded, [], callback_url=url)
    _unprocessable(response, "callback_url", says)


# -- the Restate ingress: the same rules, as 4xx terminal errors ---------------------------


def _ingress(guarded: Guarded, task_id: str, handler: str, body: object) -> httpx.Response:
    return httpx.post(f"{guarded.ingress}/restate/call/{SERVICE}/{task_id}/{handler}",
                      json=body, timeout=60)


def _finished_task(guarded: Guarded, **request: object) -> str:
    task_id = _task_id()
    with GatewayClient(guarded.ingress) as client:
        client.submit(task_id, TaskRequest.model_validate({"prompt": "Report", **request}))
        status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.SUCCEEDED, status.error
    return task_id


def test_on_notify_with_a_raw_apprise_url_is_refused(guarded: Guarded) -> None:
    task_id = _finished_task(guarded)
    before = guarded.counter.connections
    response = _ingress(guarded, task_id, "on_notify", admin_ssrf(guarded.counter.port))
    assert response.status_code == 403, response.text
    assert "channel 'apprise' is not open" in response.text
    refused = _ingress(guarded, task_id, "subscribe", admin_ssrf(guarded.counter.port))
    assert refused.status_code == 403 and "not open" in refused.text
    with GatewayClient(guarded.ingress) as client:
        # the refusal is recorded (a `/send` caller hears of it in status), nothing delivered
        deadline = time.monotonic() + 20
        while not (deliveries := client.status(task_id).deliveries):
            assert time.monotonic() < deadline, "the refused subscriber was never recorded"
            time.sleep(0.2)
    assert {d.state for d in deliveries} == {DeliveryState.REJECTED}
    assert all("not open" in (d.last_error or "") for d in deliveries)
    assert all(str(guarded.counter.port) not in d.target for d in deliveries)
    assert guarded.counter.connections == before


def test_a_forged_standing_subscription_is_refused(guarded: Guarded) -> None:
    """The YAML file's apprise subscription is accepted by on_notify as routed by run; the
    same channel with another target, id and all, is not."""
    task_id = _finished_task(guarded, labels={"route": "ops-json"})
    with GatewayClient(guarded.ingress) as client:
        [standing] = client.status(task_id).deliveries
    before = guarded.counter.connections
    forged = {"channel": "apprise", "from_task": True, "id": standing.subscription_id,
              "target": f"json://127.0.0.1:{guarded.counter.port}/deployments?method=PUT"}
    response = _ingress(guarded, task_id, "on_notify", forged)
    assert response.status_code == 403, response.text
    assert guarded.counter.connections == before


def test_subscriber_options_cannot_widen_the_guard(guarded: Guarded) -> None:
    """Only the YAML file allows private targets; a subscriber's options are refused."""
    before = guarded.counter.connections
    task_id = _task_id()
    wide = {"channel": "webhook", "target": f"http://127.0.0.1:{guarded.counter.port}/agent",
            "options": {"allow_private_targets": True}}
    with GatewayClient(guarded.ingress) as client:
        client.submit(task_id, TaskRequest.model_validate(
            {"prompt": "Report", "subscriptions": [wide]}))
        status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.FAILED and status.deliveries == []
    assert status.error and "allow_private_targets can only be set in the YAML file" in (
        status.error)
    other = _finished_task(guarded)
    moved = {"channel": "email", "target": "ops@example.com",
             "options": {"host": "127.0.0.1", "port": guarded.counter.port}}
    response = _ingress(guarded, other, "subscribe", moved)
    assert response.status_code == 403 and "host, port can only be set" in response.text
    assert guarded.counter.connections == before


# -- gateway up, and what deploy/ ships ----------------------------------------------------


def test_gateway_up_warns_about_demo_only_settings(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens: the gateway keeps trying to register
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "up", "--config", str(ROOT / "config" / "gateway.yaml"),
         "--restate-admin-url", f"http://127.0.0.1:{closed}",
         "--restate-ingress-url", f"http://127.0.0.1:{closed}",
         "--service-port", str(free_port()), "--api-port", str(free_port())],
        env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"}, cwd=tmp_path,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while sum("warning:" in line for line in lines) < 3 and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        reader.join(5)
        if proc.stderr is not None:
            proc.stderr.close()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert any("channel 'email' allows private targets" in w for w in warnings), lines
    assert any("channel 'webhook' allows private targets" in w for w in warnings), lines
    assert any("channel 'webhook' signs with the published demo secret" in w
               for w in warnings), lines
    assert not any(DEMO_WEBHOOK_SECRET in line for line in lines)


_ALLOW = re.compile(r"""["']?allow_private_targets["']?\s*:\s*["']?(true|yes|on|1)\b""",
                    re.IGNORECASE)


def test_deploy_ships_no_private_target_allowance_or_demo_secret() -> None:
    key = DEMO_WEBHOOK_SECRET.removeprefix("whsec_")
    files = [p for p in (ROOT / "deploy").rglob("*")
             if p.is_file() and p.suffix in (".yaml", ".yml", ".json", ".tpl", ".txt", "")]
    assert any(p.name == "values.yaml" for p in files)  # the scan reaches the Helm values
    assert any(p.name == "gateway.yaml" for p in files)  # and the kustomize configuration
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        where = path.relative_to(ROOT)
        assert not _ALLOW.search(text), f"{where} allows private targets"
        assert key not in text, f"{where} ships the demo webhook secret"


def test_the_deploy_scan_recognises_what_it_looks_for() -> None:
    for text in ("allow_private_targets: true", '"allow_private_targets": true',
                 "  allow_private_targets: 'yes'", "{allow_private_targets: True}"):
        assert _ALLOW.search(text), text
    assert not _ALLOW.search("allow_private_targets: false")
