"""The one time limit of a delivery attempt, and the ``timeout`` option that may lower it.

The limit is the channel's ``retry.attempt_timeout`` (30 s by default). The core cancels an
attempt after it and hands it to the plugin as ``Message.time_limit``; a plugin sets its
library's timeouts to :func:`send_timeout` of it, a little below, so its own "timed out after
Ns" error arrives before the core's cutoff.

``timeout`` in a channel's options is kept for older configuration files and API callers: it
is not a plugin option but lowers the attempt timeout (never raises it), of the whole channel
in the YAML file (``gateway config check`` says to write ``retry: {attempt_timeout: N}``
instead) or of one subscription, where the plugin lists ``timeout`` in ``subscriber_options``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_SUBSCRIBER_TIMEOUT",
    "TIMEOUT_OPTION",
    "TimeoutOption",
    "attempt_limit",
    "send_timeout",
    "split_timeout",
]

#: the option that lowers the attempt timeout
TIMEOUT_OPTION = "timeout"
#: the most a subscriber that does not come from the YAML file may ask for, in seconds
MAX_SUBSCRIBER_TIMEOUT = 300.0


class TimeoutOption(BaseModel):
    """``options.timeout``: seconds, lowering the attempt timeout (validated on its own, so its
    errors read ``options.timeout: ...`` like a plugin option's)."""

    model_config = ConfigDict(extra="ignore")

    timeout: float | None = Field(None, gt=0, le=600,
                                  description="lowers the attempt timeout to this many seconds")


def split_timeout(options: Mapping[str, Any]) -> tuple[dict[str, Any], float | None]:
    """``options`` without ``timeout``, and its value (``ValidationError`` if it is not a
    number of seconds above 0, at most 600)."""
    rest = dict(options)
    if TIMEOUT_OPTION not in rest:
        return rest, None
    value = TimeoutOption.model_validate({TIMEOUT_OPTION: rest.pop(TIMEOUT_OPTION)}).timeout
    return rest, value


def attempt_limit(attempt_timeout: float, *timeouts: float | None) -> float:
    """The attempt timeout, lowered (never raised) by each ``timeout`` option given."""
    return min([attempt_timeout, *(t for t in timeouts if t is not None)])


def send_timeout(time_limit: float) -> float:
    """What a plugin gives its library (HTTP, SMTP, Apprise) out of an attempt's
    ``time_limit``: a fifth less, at most a second less (30 s -> 29 s, 2 s -> 1.6 s)."""
    return time_limit - min(1.0, time_limit / 5)
