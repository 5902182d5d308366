"""Routing: which standing subscriptions a task gets. Pure: no I/O, no clock, no randomness.

``run`` calls :func:`route` once when a task starts and journals the answer, so a
configuration change (or a replay) never changes who was chosen for a task in flight.
The outcome filter is not applied here: it travels in :attr:`Subscription.outcomes` and
:func:`wants` applies it when the outcome is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from gateway.core.models import Outcome, Subscription, Target, Task, subscription_id

if TYPE_CHECKING:
    from gateway.config import Match, StandingSubscription

__all__ = ["fallback_chain", "matches", "route", "wants"]

_OUTCOME_ORDER: tuple[Outcome, ...] = ("succeeded", "failed", "timed_out")


def matches(match: Match, task: Task) -> bool:
    """Whether ``task`` is one ``match`` asks for: its agent is listed (or none are), and
    every listed label has one of the listed values."""
    if match.agents and task.agent not in match.agents:
        return False
    return all(task.labels.get(key) in values for key, values in match.labels.items())


def fallback_chain(
    standing: StandingSubscription,
    primary: Target,
    channel_fallbacks: Mapping[str, Sequence[str]],
) -> list[Target]:
    """Where to go when ``primary`` fails: the subscription's own ``fallback`` when it has
    one, else its channel's configured fallback channels, each with the subscriber's target
    there from ``targets`` (a channel without one is left out)."""
    chain: list[Target] = []
    if standing.fallback is not None:
        candidates = [standing.target_for(dest) for dest in standing.fallback]
    else:
        candidates = [
            Target(channel=name, target=standing.targets[name])
            for name in channel_fallbacks.get(primary.channel, ())
            if name in standing.targets
        ]
    seen = {(primary.channel, primary.target)}
    for target in candidates:
        if target is not None and (target.channel, target.target) not in seen:
            seen.add((target.channel, target.target))
            chain.append(target)
    return chain


def route(
    task: Task,
    subscriptions: Sequence[StandingSubscription],
    channel_fallbacks: Mapping[str, Sequence[str]] | None = None,
) -> list[Subscription]:
    """The subscriptions ``task`` gets from the standing ``subscriptions``, in their order.

    Each ``notify`` destination becomes one :class:`Subscription` with a stable id
    (:func:`gateway.core.models.subscription_id`: the same target named twice, or also named at
    submit time, is one subscription); ``source`` is the standing subscription's name. When
    two standing subscriptions reach the same target, the first one's channel, fallback and
    template are kept and the outcomes they ask for are merged.
    """
    fallbacks = channel_fallbacks or {}
    routed: dict[str, Subscription] = {}
    for standing in subscriptions:
        if not matches(standing.match, task):
            continue
        for dest in standing.notify:
            target = standing.target_for(dest)
            if target is None:
                continue  # the configuration check reports it; nothing to deliver to
            sub_id = subscription_id(task.task_id, target)
            earlier = routed.get(sub_id)
            if earlier is not None:
                merged = set(earlier.outcomes) | set(standing.match.outcomes)
                outcomes = [o for o in _OUTCOME_ORDER if o in merged]
                routed[sub_id] = earlier.model_copy(update={"outcomes": outcomes})
                continue
            routed[sub_id] = Subscription(
                channel=target.channel,
                target=target.target,
                options=dict(target.options),
                id=sub_id,
                fallback=fallback_chain(standing, target, fallbacks),
                outcomes=[o for o in _OUTCOME_ORDER if o in standing.match.outcomes],
                template=standing.template,
                source=standing.name,
            )
    return list(routed.values())


def wants(subscription: Subscription, outcome: Outcome) -> bool:
    """Whether ``subscription`` asked to hear about ``outcome``."""
    return outcome in subscription.outcomes
