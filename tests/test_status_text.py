"""The wording of ``gateway status`` and of rejected subscribers' receipts (pure)."""

from __future__ import annotations

from gateway.core import (
    AttemptRecord,
    DeliveryReceipt,
    DeliveryState,
    Subscription,
    Target,
    TaskState,
    TaskStatus,
    delivery_state_text,
    repeat_note,
    subscription_id,
    task_state_text,
)
from gateway.core.rejection import mask_target, rejected_receipt


def receipt(state: DeliveryState, attempts: int = 0, history: list[AttemptRecord] | None = None,
            last_error: str | None = None) -> DeliveryReceipt:
    return DeliveryReceipt(subscription_id="s_1", channel="webhook", target="h***", state=state,
                           attempts=attempts, history=history or [], last_error=last_error,
                           created_at=1.0, updated_at=2.0)


def failed(n: int, error: str = "webhook: HTTP 503") -> AttemptRecord:
    return AttemptRecord(number=n, at=float(n), channel="webhook", outcome="failed", error=error)


def ok(n: int, channel: str = "webhook") -> AttemptRecord:
    return AttemptRecord(number=n, at=float(n), channel=channel, outcome="delivered")


def test_a_delivery_on_the_first_attempt_is_just_delivered() -> None:
    assert delivery_state_text(receipt(DeliveryState.DELIVERED, 1, [ok(1)])) == "delivered"


def test_earlier_failed_attempts_are_history_not_the_state() -> None:
    text = delivery_state_text(receipt(DeliveryState.DELIVERED, 2, [failed(1), ok(2)]))
    assert text == "delivered (attempt 2; attempt 1 failed: webhook: HTTP 503)"
    text = delivery_state_text(receipt(DeliveryState.DELIVERED, 3,
                                       [failed(1), failed(2), ok(3)]))
    assert text == "delivered (attempt 3; attempts 1-2 failed: webhook: HTTP 503)"
    text = delivery_state_text(receipt(
        DeliveryState.DELIVERED_BY_FALLBACK, 3,
        [failed(1), failed(2, "webhook: HTTP 400"), ok(3, "email")]))
    assert text == ("delivered-by-fallback (attempt 3; attempt 1 failed: webhook: HTTP 503; "
                    "attempt 2 failed: webhook: HTTP 400)")
    not_sent = AttemptRecord(number=0, channel="slack", outcome="not-sent",
                             error="slack: unknown channel")
    text = delivery_state_text(receipt(DeliveryState.DELIVERED_BY_FALLBACK, 1,
                                       [not_sent, ok(1, "email")]))
    assert text == "delivered-by-fallback (attempt 1; slack not sent: slack: unknown channel)"


def test_retrying_and_failed_states() -> None:
    assert delivery_state_text(receipt(DeliveryState.RETRYING, 2, [failed(1), failed(2)])) == (
        "retrying (after attempt 2)")
    assert delivery_state_text(receipt(DeliveryState.FAILED, 3, [failed(1)] * 3)) == "failed"


def test_a_task_not_started_says_who_waits_and_who_was_rejected() -> None:
    waiting = receipt(DeliveryState.WAITING)
    rejected = receipt(DeliveryState.REJECTED)
    status = TaskStatus(task_id="t", state=TaskState.NOT_STARTED, deliveries=[waiting])
    assert task_state_text(status) == "not started; 1 subscriber waiting"
    status = TaskStatus(task_id="t", state=TaskState.NOT_STARTED,
                        deliveries=[waiting, waiting, rejected])
    assert task_state_text(status) == "not started; 2 subscribers waiting; 1 subscriber rejected"
    assert task_state_text(TaskStatus(task_id="t", state=TaskState.RUNNING)) == "running"


def test_repeat_notes() -> None:
    assert repeat_note(1, 2) == "; 1 new subscriber added"
    assert repeat_note(2, 2) == "; 2 new subscribers added"
    assert repeat_note(0, 2) == "; no new subscribers (all were subscribed already)"
    assert repeat_note(0, 0) == ""


def test_a_rejected_receipt_masks_the_target_and_keeps_secrets_out() -> None:
    secret = "s3cr3t-token-value"
    raw = {"channel": "webhook", "target": f"https://h.example.com/x?token={secret}"}
    reason = f"invalid subscriber: webhook: {raw['target']} is not allowed; key {secret}"
    out = rejected_receipt("t-1", raw, reason, 5.0, lambda s: s.replace(secret, "***"))
    assert out["state"] == "rejected" and out["channel"] == "webhook"
    assert out["target"] == "htt***"
    assert secret not in str(out) and "h.example.com" not in str(out)
    assert "is not allowed" in out["last_error"]
    again = rejected_receipt("t-1", raw, reason, 9.0, lambda s: s)
    assert again["subscription_id"] == out["subscription_id"]  # the same refusal is one
    other = rejected_receipt("t-2", raw, reason, 9.0, lambda s: s)
    assert other["subscription_id"] != out["subscription_id"]
    long = rejected_receipt("t-1", "x" * 5000, "why " * 500, 1.0, lambda s: s)
    assert len(long["last_error"]) <= 300 and long["channel"] == "unknown"
    assert mask_target("ab") == "***" and mask_target("me@example.com") == "me@***"


def test_the_subscription_id_is_derived_from_what_the_subscriber_is() -> None:
    plain = Subscription(channel="webhook", target="https://h.example.com/x")
    assert subscription_id("t", plain) == subscription_id("t", plain.model_copy())
    assert plain.identified("t").id == subscription_id("t", plain)
    assert plain.model_copy(update={"id": "mine"}).identified("t").id == plain.identified("t").id
    with_options = plain.model_copy(update={"options": {"timeout": 3}})
    with_fallback = plain.model_copy(update={
        "fallback": [Target(channel="email", target="me@example.com")]})
    ids = {subscription_id(t, s) for t in ("t", "u")
           for s in (plain, with_options, with_fallback)}
    assert len(ids) == 6
    # outcomes and templates say what it is told, not who it is
    assert plain.model_copy(update={"outcomes": ["failed"]}).identified("t").id == (
        plain.identified("t").id)
