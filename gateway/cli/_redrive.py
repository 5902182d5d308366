"""``gateway redrive --channel C [--target T] --since TIME``: send again every delivery on a
channel that failed since a time (``POST /v1/redrive`` of the gateway's API).

``TIME`` is ISO 8601 (``2026-11-27T03:00:00Z``) or an age: ``90m``, ``6h``, ``2d``.
The single form, ``gateway redrive TASK SUBSCRIPTION``, comes with the durable redrive; this
module's :func:`redrive_failed` is what its ``--channel`` form calls.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

from gateway.cli._console import fail, out
from gateway.durable import ApiClient

__all__ = ["parse_since", "redrive_failed"]

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> str:
    """``--since`` as an ISO 8601 UTC time; exits 2 with the accepted forms when it is not."""
    value = text.strip()
    age = _AGE.match(value)
    if age:
        at = (now or time.time()) - float(age.group(1)) * _UNIT[age.group(2)]
        return datetime.fromtimestamp(at, UTC).isoformat()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--since {text!r}: give an ISO 8601 time (2026-11-27T03:00:00Z) or an age "
             "(90m, 6h, 2d)", 2)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def redrive_failed(channel: str, target: str | None, since: str, *, api_url: str,
                   api_key: str | None, as_json: bool = False) -> None:
    """Through the gateway's API (its key needs the ``subscribe`` scope): the same checks
    (unknown channel, a time in the future) and tenant as every other caller."""
    when = parse_since(since)
    if not api_key:
        fail("redrive --channel needs an API key with the subscribe scope: --api-key or "
             "GATEWAY_API_KEY", 2)
    with ApiClient(api_url, api_key) as client:
        data = client.redrive_failed(channel, when, target)
    if as_json:
        out.print_json(json.dumps(data))
        return
    rows = data["redriven"]
    for row in rows:
        note = f"  refused: {row['error']}" if row.get("error") else ""
        out.print(f"{row['task_id']}  {row['subscription_id']}  {row['state']}{note}",
                  soft_wrap=True)
    out.print(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'} on {channel} sent again"
              + (" (stopped at the limit: run it again for the rest)"
                 if data.get("truncated") else ""))
