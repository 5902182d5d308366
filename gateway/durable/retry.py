"""The retry policy, applied. The policy itself is one model, ``gateway.core.RetryPolicy``:
a channel plugin declares its default (``Channel.retry``), a channel in the YAML file may
override it (``retry:``), and its ``attempt_timeout`` is the one time limit of an attempt:
the plugin gets it as ``Message.time_limit`` and ends a little earlier with its own error
(an older ``options.timeout`` only lowers it: :mod:`gateway.channels._time_limit`).

Here it becomes the SDK's options of a journaled step: a delivery attempt (its retries are
the gateway's own loop, with durable timers of ``RetryPolicy.delay`` between attempts, so
each try shows in the receipt), or an agent's model step (retried by the SDK in place).
How Restate retries a handler whose process died is ``INVOCATION_RETRY`` (see
:mod:`gateway.durable._services`): never dropped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from restate import RunOptions

from gateway.core import RetryPolicy

__all__ = ["AGENT_STEP_RETRY", "step_options"]

T = TypeVar("T")

#: an agent's model step: a few quick tries in place (the agent's ``max_attempts`` wins)
AGENT_STEP_RETRY = RetryPolicy(initial_interval=0.5, max_interval=10.0, max_attempts=3)


def step_options(policy: RetryPolicy, type_hint: type[T] | None = None,
                 **overrides: Any) -> RunOptions[T]:
    """The options of a journaled step retried as ``policy`` says."""
    policy = policy.model_copy(update=overrides) if overrides else policy
    return RunOptions(
        type_hint=type_hint, max_attempts=policy.max_attempts,
        initial_retry_interval=timedelta(seconds=policy.initial_interval),
        max_retry_interval=timedelta(seconds=policy.max_interval),
        retry_interval_factor=policy.factor,
    )
