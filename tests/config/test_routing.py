"""Routing as pure unit tests: agents, labels, outcomes, fallbacks, ids."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import StandingSubscription
from gateway.core import Outcome, Subscription, Target, Task, subscription_id
from gateway.core.routing import matches, route, wants

FALLBACKS = {"slack": ["sms", "email"], "sms": ["email"]}


def task(agent: str = "default", **labels: str) -> Task:
    return Task(task_id="t-1", prompt="p", agent=agent, labels=labels, submitted_at=0.0)


def standing(**fields: Any) -> StandingSubscription:
    fields.setdefault("name", "s")
    fields.setdefault("notify", ["email:a@example.com"])
    return StandingSubscription.model_validate(fields)


@pytest.mark.parametrize(
    ("match", "agent", "labels", "expected"),
    [
        ({}, "default", {}, True),
        ({}, "researcher", {"team": "ml"}, True),
        ({"agents": ["researcher"]}, "researcher", {}, True),
        ({"agents": ["researcher"]}, "default", {}, False),
        ({"labels": {"team": "ml"}}, "default", {"team": "ml"}, True),
        ({"labels": {"team": "ml"}}, "default", {"team": "ml", "env": "prod"}, True),
        ({"labels": {"team": "ml"}}, "default", {"team": "web"}, False),
        ({"labels": {"team": "ml"}}, "default", {}, False),
        ({"labels": {"team": "ml", "env": "prod"}}, "default", {"team": "ml"}, False),
        ({"labels": {"team": "ml", "env": "prod"}}, "default", {"team": "ml", "env": "prod"}, True),
        ({"labels": {"env": ["prod", "production"]}}, "default", {"env": "production"}, True),
        ({"labels": {"env": ["prod", "production"]}}, "default", {"env": "dev"}, False),
        ({"labels": {"tier": 1}}, "default", {"tier": "1"}, True),
        ({"labels": {"urgent": True}}, "default", {"urgent": "true"}, True),
        ({"agents": ["a"], "labels": {"team": "ml"}}, "a", {"team": "ml"}, True),
        ({"agents": ["a"], "labels": {"team": "ml"}}, "b", {"team": "ml"}, False),
    ],
)
def test_matches_on_agents_and_every_listed_label(
    match: dict[str, Any], agent: str, labels: dict[str, str], expected: bool
) -> None:
    sub = standing(match=match)
    assert matches(sub.match, task(agent, **labels)) is expected
    assert bool(route(task(agent, **labels), [sub])) is expected


@pytest.mark.parametrize(
    ("outcomes", "asked", "expected"),
    [
        (None, "succeeded", True),
        (None, "failed", True),
        (None, "timed_out", False),
        (["timed_out", "failed"], "timed_out", True),
        (["timed_out", "failed"], "succeeded", False),
        (["succeeded"], "failed", False),
    ],
)
def test_outcomes_travel_with_the_subscription(
    outcomes: list[Outcome] | None, asked: Outcome, expected: bool
) -> None:
    match = {} if outcomes is None else {"outcomes": outcomes}
    [sub] = route(task(), [standing(match=match)])
    assert wants(sub, asked) is expected


def test_outcome_filter_is_not_applied_by_route() -> None:
    only_failures = standing(match={"outcomes": ["failed"]})
    [sub] = route(task(), [only_failures])
    assert sub.outcomes == ["failed"]


def test_routed_subscription_carries_name_template_id_and_options() -> None:
    sub = standing(
        name="ml-team", template="brief",
        notify=[{"channel": "webhook", "target": "https://h.example.com/x",
                 "options": {"timeout": 3}}],
    )
    [routed] = route(task(), [sub])
    target = Target(channel="webhook", target="https://h.example.com/x", options={"timeout": 3})
    assert routed == Subscription(
        channel="webhook", target="https://h.example.com/x", options={"timeout": 3},
        id=subscription_id("t-1", target), fallback=[], outcomes=["succeeded", "failed"],
        template="brief", source="ml-team",
    )


def test_ids_are_stable_and_per_task() -> None:
    sub = standing()
    first = route(task(), [sub])
    assert route(task(), [sub]) == first
    other = Task(task_id="t-2", prompt="p", agent="default", submitted_at=0.0)
    assert route(other, [sub])[0].id != first[0].id


def test_targets_fill_in_channel_names_and_every_destination_is_its_own_subscription() -> None:
    sub = standing(targets={"slack": "#ml", "email": "ml@example.com"},
                   notify=["slack", "email", "sms:+15550100"])
    routed = route(task(), [sub])
    assert [(s.channel, s.target) for s in routed] == [
        ("slack", "#ml"), ("email", "ml@example.com"), ("sms", "+15550100")]


def test_channel_fallbacks_expand_with_the_subscribers_targets() -> None:
    sub = standing(targets={"slack": "#ml", "sms": "+15550100", "email": "ml@example.com"},
                   notify=["slack"])
    [routed] = route(task(), [sub], FALLBACKS)
    assert routed.fallback == [Target(channel="sms", target="+15550100"),
                               Target(channel="email", target="ml@example.com")]


def test_a_fallback_channel_without_a_target_is_left_out() -> None:
    sub = standing(targets={"slack": "#ml", "email": "ml@example.com"}, notify=["slack"])
    [routed] = route(task(), [sub], FALLBACKS)
    assert routed.fallback == [Target(channel="email", target="ml@example.com")]


def test_subscription_fallback_wins_over_the_channel_fallback() -> None:
    sub = standing(targets={"slack": "#ml", "sms": "+15550100", "email": "ml@example.com"},
                   notify=["slack"], fallback=["email", "webhook:https://h.example.com/x"])
    [routed] = route(task(), [sub], FALLBACKS)
    assert routed.fallback == [Target(channel="email", target="ml@example.com"),
                               Target(channel="webhook", target="https://h.example.com/x")]


def test_an_empty_subscription_fallback_turns_the_channel_fallback_off() -> None:
    sub = standing(targets={"slack": "#ml", "sms": "+15550100"}, notify=["slack"], fallback=[])
    [routed] = route(task(), [sub], FALLBACKS)
    assert routed.fallback == []


def test_a_fallback_never_repeats_the_primary_target() -> None:
    sub = standing(notify=["email:a@example.com", "email:b@example.com"],
                   fallback=["email:a@example.com"])
    first, second = route(task(), [sub])
    assert first.fallback == []
    assert second.fallback == [Target(channel="email", target="a@example.com")]


def test_shorthand_channel_and_target() -> None:
    sub = standing(notify=[], channel="slack", target="#ml")
    [routed] = route(task(), [sub])
    assert (routed.channel, routed.target) == ("slack", "#ml")


def test_the_same_target_twice_is_one_subscription_with_merged_outcomes() -> None:
    first = standing(name="ml", match={"outcomes": ["succeeded"]}, template="brief")
    second = standing(name="failures", match={"outcomes": ["timed_out", "failed"]})
    [routed] = route(task(), [first, second])
    assert routed.source == "ml"
    assert routed.template == "brief"
    assert routed.outcomes == ["succeeded", "failed", "timed_out"]


def test_order_of_standing_subscriptions_is_kept() -> None:
    subs = [standing(name=n, notify=[f"email:{n}@example.com"]) for n in ("c", "a", "b")]
    assert [s.source for s in route(task(), subs)] == ["c", "a", "b"]


def test_no_standing_subscription_no_route() -> None:
    assert route(task(), []) == []
