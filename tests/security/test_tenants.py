"""Tasks have owners: hook task ids cannot be claimed through the API, and a tenant's tasks
are invisible to other tenants and to keys of no tenant (404, like a task that does not
exist), while two tenants may both use the same task id."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from gateway.api import hash_key
from gateway.cli.app import app
from gateway.config import ApiKey
from gateway.core import TaskRequest, TaskState
from gateway.durable import ApiClient
from gateway.local import Mailbox, ReceivedWebhook, WebhookReceiver
from tests.security.owned_api import (
    KEYS,
    auth,
    body_of,
    new_id,
    owned_api_fixture,  # noqa: F401 - the fixture owned_api
    read_task,
    standard_headers,
)

pytestmark = pytest.mark.restate

runner = CliRunner()


def test_the_api_cannot_claim_the_task_id_of_a_hook_delivery(owned_api: str) -> None:
    delivery = new_id("msg")
    hook_task = f"hook-orders-{delivery}"
    for key in (KEYS.plain, KEYS.acme):
        claim = httpx.post(f"{owned_api}/v1/tasks", headers=auth(key), json={
            "task_id": hook_task, "prompt": "Wire the refund to the attacker",
            "labels": {"team": "shop"}})
        assert claim.status_code == 422, claim.text
        assert claim.json()["fields"][0]["field"] == "task_id"
        assert "belong to inbound hooks" in claim.json()["message"]

    body = body_of({"order": "A-17"})
    genuine = httpx.post(f"{owned_api}/v1/hooks/orders", content=body,
                         headers=standard_headers(body, delivery))
    assert genuine.status_code == 201, genuine.text
    assert genuine.json()["task_id"] == hook_task and genuine.json()["created"] is True
    task = read_task(owned_api, KEYS.plain, hook_task)
    assert task["prompt"] == "Check order A-17" and task["labels"] == {"hook": "orders"}


def test_a_tenants_task_is_not_found_by_another_tenant_nor_by_a_key_of_no_tenant(
    owned_api: str, mailbox: Mailbox
) -> None:
    task_id = new_id("build")
    inbox = f"{task_id}@acme.example.com"
    created = httpx.post(f"{owned_api}/v1/tasks", headers=auth(KEYS.acme), json={
        "task_id": task_id, "prompt": "Acme's secret plan", "agent": "slow",
        "subscriptions": [inbox]})
    assert created.status_code == 201, created.text
    assert created.json()["task_id"] == task_id
    assert created.json()["status_url"].endswith(f"/v1/tasks/{task_id}")
    [sub] = created.json()["subscriptions"]
    assert sub["task_id"] == task_id
    sid = sub["subscription_id"]

    for other in (KEYS.globex, KEYS.plain):
        read = httpx.get(f"{owned_api}/v1/tasks/{task_id}", headers=auth(other))
        subscribe = httpx.post(f"{owned_api}/v1/tasks/{task_id}/subscriptions",
                               headers=auth(other), json=f"{task_id}@spy.example.com")
        cancel = httpx.delete(f"{owned_api}/v1/tasks/{task_id}/subscriptions/{sid}",
                              headers=auth(other))
        for r in (read, subscribe, cancel):
            assert r.status_code == 404, r.text
            assert "Acme" not in r.text and "acme" not in r.text

    own = read_task(owned_api, KEYS.acme, task_id)
    assert own["task_id"] == task_id and own["prompt"] == "Acme's secret plan"
    assert mailbox.wait_for_recipient(inbox, 1, timeout=30)  # not cancelled by the others
    assert mailbox.for_recipient(f"{task_id}@spy.example.com") == []


def test_two_tenants_use_the_same_task_id_without_seeing_each_other(owned_api: str) -> None:
    task_id = new_id("build")
    answers = {}
    for name, key in (("acme", KEYS.acme), ("globex", KEYS.globex), ("none", KEYS.plain)):
        r = httpx.post(f"{owned_api}/v1/tasks", headers=auth(key),
                       json={"task_id": task_id, "prompt": f"The plan of {name}"})
        assert r.status_code == 201 and r.json()["created"] is True, (name, r.text)
        answers[name] = r.json()
    for name, key in (("acme", KEYS.acme), ("globex", KEYS.globex), ("none", KEYS.plain)):
        task = read_task(owned_api, key, task_id)
        assert task["task_id"] == task_id and task["prompt"] == f"The plan of {name}"
    # a repeat by the owner is still the owner's task
    again = httpx.post(f"{owned_api}/v1/tasks", headers=auth(KEYS.globex),
                       json={"task_id": task_id, "prompt": "Another plan"})
    assert again.status_code == 200 and again.json() == {**answers["globex"], "created": False}


def test_a_tenant_does_not_see_tasks_of_no_tenant_nor_hook_tasks(owned_api: str) -> None:
    task_id = new_id("ops")
    assert httpx.post(f"{owned_api}/v1/tasks", headers=auth(KEYS.plain),
                      json={"task_id": task_id, "prompt": "Ops only"}).status_code == 201
    body = body_of({"order": "B-2"})
    hook = httpx.post(f"{owned_api}/v1/hooks/orders", content=body,
                      headers=standard_headers(body, new_id("msg"))).json()["task_id"]
    for tid in (task_id, hook):
        assert httpx.get(f"{owned_api}/v1/tasks/{tid}",
                         headers=auth(KEYS.acme)).status_code == 404
        assert httpx.get(f"{owned_api}/v1/tasks/{tid}",
                         headers=auth(KEYS.plain)).status_code == 200


def test_a_tenants_subscribers_are_told_its_own_task_id(
    owned_api: str, webhook_receiver: WebhookReceiver, mailbox: Mailbox
) -> None:
    task_id = new_id("notify")
    inbox = f"{task_id}@acme.example.com"
    r = httpx.post(f"{owned_api}/v1/tasks", headers=auth(KEYS.acme), json={
        "task_id": task_id, "prompt": "Tell me", "subscriptions": [inbox],
        "callback_url": f"{webhook_receiver.url}/hooks/{task_id}"})
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 30
    hooks: list[ReceivedWebhook] = []
    while not hooks and time.monotonic() < deadline:
        hooks = [h for h in webhook_receiver.delivered() if h.path == f"/hooks/{task_id}"]
        time.sleep(0.05)
    assert len(hooks) == 1 and hooks[0].verified is True
    assert hooks[0].json()["task_id"] == task_id
    [mail] = mailbox.wait_for_recipient(inbox, 1, timeout=30)
    assert task_id in mail.as_string() and f"acme~{task_id}" not in mail.as_string()


def test_the_tasks_of_a_tenants_hook_source_are_the_tenants(owned_api: str) -> None:
    delivery = new_id("msg")
    body = body_of({"order": "C-3"})
    r = httpx.post(f"{owned_api}/v1/hooks/acme-orders", content=body,
                   headers=standard_headers(body, delivery))
    assert r.status_code == 201, r.text
    task_id = r.json()["task_id"]
    assert task_id == f"hook-acme-orders-{delivery}"
    assert r.json()["status_url"].endswith(f"/v1/tasks/{task_id}")
    own = read_task(owned_api, KEYS.acme, task_id)
    assert own["prompt"] == "Check Acme's order C-3" and own["task_id"] == task_id
    for other in (KEYS.globex, KEYS.plain):
        assert httpx.get(f"{owned_api}/v1/tasks/{task_id}",
                         headers=auth(other)).status_code == 404
    retry = httpx.post(f"{owned_api}/v1/hooks/acme-orders", content=body,
                       headers=standard_headers(body, delivery))
    assert retry.status_code == 200 and retry.json() == {**r.json(), "created": False}


def test_idempotency_keys_are_per_api_key_within_a_tenant(owned_api: str) -> None:
    idem = {"idempotency-key": new_id("idem")}
    first = httpx.post(f"{owned_api}/v1/tasks", headers={**auth(KEYS.acme), **idem},
                       json={"prompt": "Once"})
    repeat = httpx.post(f"{owned_api}/v1/tasks", headers={**auth(KEYS.acme), **idem},
                        json={"prompt": "Once"})
    other = httpx.post(f"{owned_api}/v1/tasks", headers={**auth(KEYS.globex), **idem},
                       json={"prompt": "Once"})
    assert (first.status_code, repeat.status_code, other.status_code) == (201, 200, 201)
    assert repeat.json()["task_id"] == first.json()["task_id"]
    task_id = first.json()["task_id"]
    assert httpx.get(f"{owned_api}/v1/tasks/{task_id}",
                     headers=auth(KEYS.acme)).status_code == 200
    other_id = other.json()["task_id"]
    assert other_id != task_id
    assert httpx.get(f"{owned_api}/v1/tasks/{other_id}",
                     headers=auth(KEYS.acme)).status_code == 404


def test_the_cli_and_client_through_the_api_with_a_tenants_key(owned_api: str) -> None:
    task_id = new_id("cli")
    with ApiClient(owned_api, KEYS.globex) as client:
        assert client.submit(task_id, TaskRequest(prompt="Globex's report")).new
        status = client.wait(task_id, 30)
        assert status.task_id == task_id and status.state is TaskState.SUCCEEDED
    env = {"GATEWAY_API_URL": owned_api, "GATEWAY_API_KEY": KEYS.globex}
    r = runner.invoke(app, ["status", task_id, "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["task_id"] == task_id
    assert json.loads(r.output)["prompt"] == "Globex's report"
    hidden = runner.invoke(app, ["status", task_id, "--json"],
                           env={**env, "GATEWAY_API_KEY": KEYS.acme})
    assert hidden.exit_code == 1, hidden.output


def test_api_key_makes_a_key_of_a_tenant() -> None:
    r = runner.invoke(app, ["api-key", "acme-ci", "--tenant", "acme", "--scope", "read"])
    assert r.exit_code == 0, r.output
    key, line = r.stdout.splitlines()
    [entry] = yaml.safe_load(line)
    assert ApiKey.model_validate(entry) == ApiKey(name="acme-ci", hash=hash_key(key),
                                                  scopes=["read"], tenant="acme")
    bad = runner.invoke(app, ["api-key", "x", "--tenant", "acme~globex"])
    assert bad.exit_code == 2
    assert "--tenant: tenant 'acme~globex' must be letters, digits" in bad.output


def test_the_console_and_the_task_list_show_a_tenant_only_its_own_tasks(owned_api: str) -> None:
    task_id = new_id("console-tenant")
    created = httpx.post(f"{owned_api}/v1/tasks", headers=auth(KEYS.acme), json={
        "task_id": task_id, "prompt": "Acme's quarterly plan", "labels": {"team": task_id},
        "subscriptions": [f"{task_id}@acme.example.com"]})
    assert created.status_code == 201, created.text
    sid = created.json()["subscriptions"][0]["subscription_id"]
    mine = httpx.get(f"{owned_api}/console/tasks/{task_id}", headers=auth(KEYS.acme))
    assert mine.status_code == 200 and task_id in mine.text
    deadline = time.monotonic() + 10  # the index is written one way: it shows up shortly
    listed: list[str] = []
    while task_id not in listed and time.monotonic() < deadline:
        page = httpx.get(f"{owned_api}/v1/tasks", params={"label": f"team={task_id}"},
                         headers=auth(KEYS.acme))
        listed = [t["task_id"] for t in page.json()["tasks"]]
        time.sleep(0.1)
    assert listed == [task_id]
    assert f"/console/tasks/{task_id}" in httpx.get(
        f"{owned_api}/console/", params={"label": f"team={task_id}"}, headers=auth(KEYS.acme)).text

    for other in (KEYS.globex, KEYS.plain):
        page = httpx.get(f"{owned_api}/console/tasks/{task_id}", headers=auth(other))
        assert page.status_code == 404 and "acme" not in page.text.lower()
        events = httpx.get(f"{owned_api}/console/tasks/{task_id}/events", headers=auth(other))
        assert events.status_code == 404
        listing = httpx.get(f"{owned_api}/v1/tasks", params={"label": f"team={task_id}"},
                            headers=auth(other))
        assert listing.status_code == 200 and listing.json()["tasks"] == []
        console = httpx.get(f"{owned_api}/console/", params={"label": f"team={task_id}"},
                            headers=auth(other))
        # (the filter form repeats the label asked for; no row links to the task)
        assert console.status_code == 200 and f"/console/tasks/{task_id}" not in console.text
        redrive = httpx.post(f"{owned_api}/v1/tasks/{task_id}/subscriptions/{sid}/redrive",
                             headers=auth(other))
        assert redrive.status_code == 404, redrive.text
