"""What an HTTP provider's answer means for a delivery, shared by the HTTP channel plugins.

408, 425, 429 and 5xx are transient (``Retry-After``, in seconds or as an HTTP date, becomes
the error's ``retry_after``); every other 4xx is permanent: the same request will never be
accepted as it is.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

from gateway.core import DeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = ["TRANSIENT_STATUSES", "http_failure", "parse_retry_after"]

#: 4xx statuses that may succeed later (besides every 5xx)
TRANSIENT_STATUSES = frozenset({408, 425, 429})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def http_failure(status: int, said: str, *, retry_after: str | None = None) -> DeliveryError:
    """The delivery error for a provider's non-2xx ``status``; ``said`` is the whole message
    (who, what the provider answered), ``retry_after`` the raw ``Retry-After`` header."""
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientDeliveryError(f"{said} (transient)", status=status,
                                      retry_after=parse_retry_after(retry_after))
    return PermanentDeliveryError(f"{said} (permanent)", status=status)
