"""``gateway tasks``: the task index through the ingress and through the API."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli.app import app
from gateway.local import LocalEngine
from tests.api.conftest import KEYS
from tests.api.helpers import finished, new_id, poll

pytestmark = pytest.mark.restate

runner = CliRunner()


def test_gateway_tasks_lists_the_newest_first_with_filters_and_pages(
        api_url: str, http: httpx.Client, restate_server: LocalEngine) -> None:
    team = new_id("cli-tasks")
    ids = [new_id("listed") for _ in range(3)]
    for task_id in ids:
        r = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Count",
                                         "labels": {"team": team},
                                         "subscriptions": [f"{task_id}@example.com"]})
        assert r.status_code == 201, r.text
    for task_id in ids:
        poll(http, task_id, finished)

    ingress = ["--ingress-url", restate_server.ingress_url]
    r = runner.invoke(app, ["tasks", "--label", f"team={team}", *ingress])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("listed-")]
    assert [line.split()[0] for line in lines] == ids[::-1]  # newest first
    assert all("succeeded" in line and "1 delivered" in line for line in lines)

    # through the API, two a page: the cursor it prints fetches the rest
    api = ["--api-url", api_url, "--api-key", KEYS.reader]
    r = runner.invoke(app, ["tasks", "--label", f"team={team}", "--limit", "2", "--json", *api])
    assert r.exit_code == 0, r.output
    page = json.loads(r.output)
    assert [t["task_id"] for t in page["tasks"]] == ids[:0:-1]
    r = runner.invoke(app, ["tasks", "--label", f"team={team}", "--cursor",
                            page["next_cursor"], "--json", *api])
    assert [t["task_id"] for t in json.loads(r.output)["tasks"]] == ids[:1]

    r = runner.invoke(app, ["tasks", "--state", "sleeping", *ingress])
    assert r.exit_code == 2 and "state: one of" in r.output
