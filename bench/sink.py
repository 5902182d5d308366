"""A counting webhook receiver for the benchmarks (ASGI, served by hypercorn in its own process).

POST anything: counted; the body's ``completed_at`` (when the durable promise was resolved,
epoch seconds) gives the delay to arrival; ``webhook-id`` headers spot duplicates.
``GET /stats`` returns the figures, ``POST /reset`` clears them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

_delays: list[float] = []
_ids: dict[str, int] = {}
_count = 0


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def stats() -> dict[str, Any]:
    return {
        "count": _count,
        "unique": len(_ids) if _ids else _count,
        "duplicates": sum(n - 1 for n in _ids.values()),
        "p50_ms": _percentile(_delays, 0.50),
        "p95_ms": _percentile(_delays, 0.95),
        "p99_ms": _percentile(_delays, 0.99),
        "max_ms": _percentile(_delays, 1.0),
    }


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _count
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    now = time.time()
    out = b"{}"
    if scope["path"] == "/stats":
        out = json.dumps(stats()).encode()
    elif scope["path"] == "/reset":
        _count = 0
        _delays.clear()
        _ids.clear()
    elif scope["method"] == "POST":
        _count += 1
        headers = dict(scope["headers"])
        delivery_id = headers.get(b"webhook-id", b"").decode()
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {}
        if isinstance(doc, dict):
            stamp = doc.get("completed_at") or doc.get("resolved_at")
            if isinstance(stamp, (int, float)):
                _delays.append(now - stamp)
            delivery_id = delivery_id or str(doc.get("delivery_id") or "")
        if delivery_id:
            _ids[delivery_id] = _ids.get(delivery_id, 0) + 1
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": out})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.keep_alive_max_requests = 2_147_483_647
    config.keep_alive_timeout = 3600
    config.accesslog = None
    asyncio.run(serve(app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
