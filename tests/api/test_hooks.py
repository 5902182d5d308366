"""Inbound webhooks against the real restate-server: verified, deduplicated by their delivery
id (Restate runs a workflow key once), mapped to a task; forged, stale and replayed ones
refused."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.api.helpers import body_of, finished, github_headers, new_id, poll, standard_headers

pytestmark = pytest.mark.restate

ORDER = {"order": {"id": "A-17"}, "customer": "Ada"}


def test_a_signed_delivery_starts_a_task_and_its_retry_is_the_same_task(
    api_url: str, http: httpx.Client
) -> None:
    webhook_id = new_id("msg")
    body = body_of(ORDER)
    first = httpx.post(f"{api_url}/v1/hooks/orders", content=body,
                       headers=standard_headers(body, webhook_id))
    assert first.status_code == 201, first.text
    task_id = first.json()["task_id"]
    assert task_id == f"hook-orders-{webhook_id}" and first.json()["created"] is True

    # the sender retries (a new attempt: a new timestamp and signature, the same webhook-id)
    retry = httpx.post(f"{api_url}/v1/hooks/orders", content=body,
                       headers=standard_headers(body, webhook_id, timestamp=time.time() + 1))
    assert retry.status_code == 200, retry.text
    assert retry.json() == {**first.json(), "created": False}

    status = poll(http, task_id, finished)
    assert status["state"] == "succeeded"
    assert status["prompt"] == "Check order A-17 for Ada"
    assert status["labels"] == {"hook": "orders", "team": "shop", "order": "A-17"}


def test_a_source_with_its_own_hmac_header(api_url: str, http: httpx.Client) -> None:
    delivery = new_id("gh")
    body = body_of({"pull_request": {"title": "Fix the flaky test"}})
    r = httpx.post(f"{api_url}/v1/hooks/github", content=body,
                   headers=github_headers(body, delivery))
    assert r.status_code == 201, r.text
    status = poll(http, r.json()["task_id"], finished)
    assert status["prompt"] == "Review Fix the flaky test"
    forged = httpx.post(f"{api_url}/v1/hooks/github", content=body,
                        headers=github_headers(body, new_id("gh"), secret="not-the-secret"))
    assert forged.status_code == 401
    assert "X-Hub-Signature-256 does not match" in forged.json()["message"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("forged", "does not match any configured secret"),
        ("tampered", "does not match any configured secret"),
        ("stale", "more than 5 minutes off"),
        ("future", "more than 5 minutes off"),
        ("unsigned", "missing header webhook-signature"),
        ("malformed", "malformed webhook-signature"),
    ],
)
def test_forged_stale_and_malformed_deliveries_are_refused(
    api_url: str, case: str, message: str
) -> None:
    body = body_of(ORDER)
    webhook_id = new_id("msg")
    headers = standard_headers(body, webhook_id)
    if case == "forged":
        headers = standard_headers(body, webhook_id,
                                   secret="whsec_" + "Zm9yZ2VkLXNlY3JldC1mb3ItdGVzdHM=")
    elif case == "tampered":
        body = body_of({**ORDER, "customer": "Mallory"})
    elif case == "stale":  # a captured delivery replayed later: its signature is still valid
        headers = standard_headers(body, webhook_id, timestamp=time.time() - 310)
    elif case == "future":
        headers = standard_headers(body, webhook_id, timestamp=time.time() + 310)
    elif case == "unsigned":
        del headers["webhook-signature"]
    elif case == "malformed":
        headers["webhook-signature"] = "v1-no-comma"
    r = httpx.post(f"{api_url}/v1/hooks/orders", content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthenticated" and message in r.json()["message"]
    if "webhook-signature" in headers:
        assert headers["webhook-signature"] not in r.text


def test_unknown_source_bad_payload_and_a_mapping_that_makes_no_task(api_url: str) -> None:
    body = body_of(ORDER)
    r = httpx.post(f"{api_url}/v1/hooks/nope", content=body,
                   headers=standard_headers(body, new_id("msg")))
    assert r.status_code == 404 and "no inbound hook source 'nope'" in r.json()["message"]

    not_json = b"order=A-17"
    r = httpx.post(f"{api_url}/v1/hooks/orders", content=not_json,
                   headers=standard_headers(not_json, new_id("msg")))
    assert r.status_code == 400 and r.json()["fields"][0]["field"] == "body"

    nothing = body_of({"other": 1})
    r = httpx.post(f"{api_url}/v1/hooks/echo", content=nothing,
                   headers=standard_headers(nothing, new_id("msg")))
    assert r.status_code == 422, r.text
    assert "the mapping of hooks.echo made no valid task: prompt" in r.json()["message"]
