"""The console's pure parts: sessions and CSRF tokens, the list's filter, the timeline."""

from __future__ import annotations

import pytest

from gateway.api._http import ApiError
from gateway.api.task_list import parse_filter
from gateway.console import Sessions
from gateway.console._timeline import build_timeline
from gateway.core import AttemptRecord, DeliveryReceipt, DeliveryState, TaskState, TaskStatus
from gateway.durable.task_index import bucket_of, entry_key


def test_a_session_names_the_key_by_its_hash_and_cannot_be_forged_or_kept() -> None:
    sessions = Sessions(b"k" * 32)
    cookie = sessions.issue("sha256:abc", now=1000.0)
    assert sessions.key_hash(cookie, now=1001.0) == "sha256:abc"
    payload, mac = cookie.split(".")
    forged = Sessions(b"x" * 32).issue("sha256:abc", now=1000.0)
    assert sessions.key_hash(forged, now=1001.0) is None  # another process's secret
    assert sessions.key_hash(payload + "." + mac[::-1], now=1001.0) is None
    assert sessions.key_hash(cookie, now=1000.0 + 13 * 3600) is None  # expired
    token = sessions.csrf_token(cookie)
    assert sessions.csrf_ok(cookie, token) and not sessions.csrf_ok(cookie, None)
    assert not sessions.csrf_ok(sessions.issue("sha256:other", now=1000.0), token)


def test_a_shared_console_secret_keeps_sessions_across_processes() -> None:
    from gateway.console._session import SECRET_ENV
    from gateway.core import UserInputError

    shared = {SECRET_ENV: "s" * 64}
    cookie = Sessions.from_env(shared).issue("sha256:abc")
    # another replica, or the same one after a restart, with the same secret
    assert Sessions.from_env(shared).key_hash(cookie) == "sha256:abc"
    assert Sessions.from_env({SECRET_ENV: "t" * 64}).key_hash(cookie) is None
    assert Sessions.from_env({}).key_hash(Sessions.from_env({}).issue("sha256:abc")) is None
    with pytest.raises(UserInputError, match=f"^{SECRET_ENV}: give at least 32 random"):
        Sessions.from_env({SECRET_ENV: "short"})


def test_the_list_filter_says_which_parameter_is_wrong() -> None:
    flt = parse_filter([("state", "failed"), ("label", "team=ml"), ("label", "env=prod"),
                        ("limit", "10")])
    assert flt.state == "failed" and flt.labels == {"team": "ml", "env": "prod"}
    assert flt.query_string() == "state=failed&label=env%3Dprod&label=team%3Dml"
    for bad, field in ((("state", "sleeping"), "state"), (("label", "team"), "label"),
                       (("limit", "0"), "limit"), (("limit", "x"), "limit")):
        with pytest.raises(ApiError) as caught:
            parse_filter([bad])
        assert caught.value.fields[0].field == field


def test_index_keys_sort_by_time_within_ten_minute_buckets() -> None:
    assert bucket_of(0) == "b-19700101000" and bucket_of(599) == bucket_of(0)
    assert bucket_of(600) > bucket_of(599)
    assert entry_key(1.5, "b") > entry_key(1.25, "z") > entry_key(1.25, "a")


def _receipt(sid: str, state: DeliveryState, **extra: object) -> DeliveryReceipt:
    return DeliveryReceipt.model_validate({
        "subscription_id": sid, "channel": "webhook", "target": "https://h/***",
        "address": "https://h/full", "state": state, "created_at": 10.0, "updated_at": 12.0,
        **extra})


def test_the_timeline_puts_failures_first_and_marks_fallbacks() -> None:
    fell_back = _receipt("s_a", DeliveryState.DELIVERED_BY_FALLBACK, channel_used="email",
                         delivered_at=12.0, history=[
                             AttemptRecord(number=1, at=11.0, channel="webhook",
                                           outcome="failed", error="HTTP 400",
                                           provider_status=400),
                             AttemptRecord(number=2, at=12.0, channel="email",
                                           outcome="delivered")])
    failed = _receipt("s_b", DeliveryState.FAILED, last_error="HTTP 500", history=[
        AttemptRecord(number=1, at=11.0, channel="webhook", outcome="failed",
                      error="HTTP 500", provider_status=500)])
    status = TaskStatus(task_id="t", state=TaskState.SUCCEEDED, agent="a", submitted_at=10.0,
                        completed_at=10.5, deliveries=[fell_back, failed])
    tl = build_timeline(status, full_targets=False)
    assert [c.subscription_id for c in tl.subscribers] == ["s_b", "s_a"]
    assert (tl.failed, tl.delivered, tl.waiting, tl.settled) == (1, 1, 0, True)
    assert tl.subscribers[0].target == "https://h/***"
    assert build_timeline(status, full_targets=True).subscribers[0].target == "https://h/full"
    steps = tl.subscribers[1].steps
    assert [s.fallback for s in steps if s.channel] == [False, True]
    assert steps[1].status == "HTTP 400" and steps[-1].title == "delivered by email (fallback)"
    assert tl.subscribers[0].steps[-1].detail == ""  # the attempt said it already


def test_a_tenant_lists_only_its_own_tasks() -> None:
    from gateway.durable.task_index import _matches

    acme, plain = {"task_id": "acme~build-1"}, {"task_id": "build-1"}
    assert _matches(acme, {"tenant": "acme"}) and not _matches(plain, {"tenant": "acme"})
    assert not _matches({"task_id": "acmex~build-1"}, {"tenant": "acme"})
    assert _matches(plain, {}) and not _matches(acme, {})  # no tenant: no tenant's tasks
    labelled = {"task_id": "t", "agent": "a", "labels": {"team": "ml"}, "channels": ["sms"]}
    assert _matches(labelled, {"agent": "a", "labels": {"team": "ml"}, "channel": "sms"})
    assert not _matches(labelled, {"labels": {"team": "web"}})
    assert not _matches(labelled, {"channel": "email"})
