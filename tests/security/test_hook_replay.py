"""Inbound HMAC hooks cannot be replayed into new tasks: a task is named only by what the
signature covers. GitHub style (the delivery id header is not signed, no timestamp): the
body's digest; a scheme with a signed timestamp: its delivery id, within the window."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli._config import config_app
from gateway.config import HookSource, hook_task_id, replay_key
from gateway.local import LocalEngine
from tests.security.owned_api import (
    body_of,
    github_headers,
    new_id,
    owned_api_fixture,  # noqa: F401 - the fixture owned_api
    run_invocations,
    slack_headers,
)

pytestmark = pytest.mark.restate


def test_a_replayed_github_delivery_under_a_new_delivery_id_is_the_same_task(
    owned_api: str, restate_server: LocalEngine
) -> None:
    body = body_of({"title": f"Fix the flaky test {new_id('pr')}"})
    first = httpx.post(f"{owned_api}/v1/hooks/github", content=body,
                       headers=github_headers(body, new_id("gh")))
    assert first.status_code == 201, first.text
    task_id = first.json()["task_id"]

    # an attacker who saw the request sends it again, under delivery ids of their own
    for _ in range(3):
        replay = httpx.post(f"{owned_api}/v1/hooks/github", content=body,
                            headers=github_headers(body, new_id("gh")))
        assert replay.status_code == 200, replay.text
        assert replay.json() == {**first.json(), "created": False}
    assert run_invocations(restate_server, task_id) == 1


def test_a_changed_body_is_a_new_task(owned_api: str) -> None:
    delivery = new_id("gh")
    first = body_of({"title": f"First {delivery}"})
    second = body_of({"title": f"Second {delivery}"})
    a = httpx.post(f"{owned_api}/v1/hooks/github", content=first,
                   headers=github_headers(first, delivery))
    b = httpx.post(f"{owned_api}/v1/hooks/github", content=second,
                   headers=github_headers(second, delivery))
    assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
    assert a.json()["task_id"] != b.json()["task_id"]
    with httpx.Client(base_url=owned_api) as client:
        assert client.post("/v1/hooks/github", content=second,
                           headers=github_headers(second, new_id("gh"))).status_code == 200


def test_a_signed_timestamp_keeps_the_window_and_names_the_task_by_delivery_id(
    owned_api: str,
) -> None:
    request_id = new_id("sl")
    body = body_of({"text": f"What broke? {request_id}"})
    first = httpx.post(f"{owned_api}/v1/hooks/slack", content=body,
                       headers=slack_headers(body, request_id, time.time()))
    assert first.status_code == 201, first.text
    assert first.json()["task_id"] == f"hook-slack-{request_id}"
    # the sender's retry: signed again a moment later, the same request id
    retry = httpx.post(f"{owned_api}/v1/hooks/slack", content=body,
                       headers=slack_headers(body, request_id, time.time() + 2))
    assert retry.status_code == 200 and retry.json()["task_id"] == first.json()["task_id"]
    stale = httpx.post(f"{owned_api}/v1/hooks/slack", content=body,
                       headers=slack_headers(body, new_id("sl"), time.time() - 600))
    assert stale.status_code == 401 and "more than 5 minutes off" in stale.json()["message"]


@pytest.mark.parametrize(
    ("hmac", "same_task_for_a_new_id"),
    [
        (None, False),  # Standard Webhooks: the id is signed
        ({"signature_header": "X-Sig", "id_header": "X-Id"}, True),
        ({"signature_header": "X-Sig", "id_header": "X-Id", "signed": "{id}.{body}"}, False),
        ({"signature_header": "X-Sig", "id_header": "X-Id", "timestamp_header": "X-Ts",
          "signed": "{timestamp}.{body}"}, False),
        # a timestamp header that is not signed proves nothing: the body's digest again
        ({"signature_header": "X-Sig", "id_header": "X-Id", "timestamp_header": "X-Ts"}, True),
    ],
)
def test_what_names_the_task_of_each_scheme(hmac: dict[str, str] | None,
                                            same_task_for_a_new_id: bool) -> None:
    secret = "whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS1nYXRld2F5" if hmac is None else "s3cret"
    hook = HookSource.model_validate({"secret": secret, "prompt": "x", "hmac": hmac})
    body = b'{"a": 1}'
    one = hook_task_id("src", replay_key(hook, "id-1", body))
    two = hook_task_id("src", replay_key(hook, "id-2", body))
    assert (one == two) is same_task_for_a_new_id
    # named by the body: another body is another task; named by the signed id: the same one
    changed = hook_task_id("src", replay_key(hook, "id-1", b'{"a": 2}'))
    assert (changed != one) is same_task_for_a_new_id


def test_config_check_warns_for_an_hmac_source_without_a_signed_timestamp(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "hooks:\n"
        "  github:\n"
        "    secret: s3cret\n"
        "    hmac: {signature_header: X-Hub-Signature-256, prefix: 'sha256=', "
        "id_header: X-GitHub-Delivery}\n"
        "    prompt: 'Review {{ payload.title }}'\n"
        "  slack:\n"
        "    secret: s3cret\n"
        "    hmac: {signature_header: X-Slack-Signature, id_header: X-Slack-Request-Id,\n"
        "           timestamp_header: X-Slack-Request-Timestamp, signed: 'v0:{timestamp}:{body}'}\n"
        "    prompt: '{{ payload.text }}'\n"
        "  loose:\n"
        "    secret: s3cret\n"
        "    hmac: {signature_header: X-Sig, id_header: X-Id, timestamp_header: X-Ts}\n"
        "    prompt: '{{ payload.text }}'\n", encoding="utf-8")
    result = CliRunner().invoke(config_app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: ok — ")
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2, result.stderr
    github, loose = warnings
    assert github.startswith(f"{path}: warning: hooks.github.hmac: no timestamp_header")
    assert loose.startswith(f"{path}: warning: hooks.loose.hmac: timestamp_header X-Ts is not "
                            "signed")
    assert "s3cret" not in result.output
