"""The console's first page with a full task index: ``python -m bench --scenarios console``.

Fills the index (``TaskIndex``, see gateway/durable/task_index.py) with ``tasks`` entries
spread over the last ``days`` days, directly (``add_many`` per ten-minute bucket: no agent
runs; the index's writers are private to Restate's handlers, so a small service of the
benchmark's own calls them), then serves the API (with the console) in this process and
times its pages through HTTP: the first page of ``/console/`` (25 rows, each joined to its
task's status in Restate), ``GET /v1/tasks``, and a label-filtered page. Figures are
printed, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections import defaultdict
from typing import Any

import httpx
import restate

from bench.harness import System
from gateway.api import ApiSettings, KeyRing, RestateLink, create_api, hash_key, new_key
from gateway.api.http_server import serve_api
from gateway.channels import discover_plugins
from gateway.config import ApiKey, load_config
from gateway.durable import runtime_for
from gateway.durable.task_index import BUCKETS_KEY, INDEX, add_many, bucket_of
from gateway.local import free_port, register_deployment
from gateway.local.endpoint import serve_endpoint

__all__ = ["console_first_page"]

_AGENTS = ["default", "researcher", "triage", "writer"]
_TEAMS = ["ml", "web", "data", "infra", "shop"]


def _entries(tasks: int, days: float, now: float) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(17)
    buckets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    span = days * 86400
    for i in range(tasks):
        at = now - span + span * i / tasks
        entry = {"task_id": f"bench-{i:06d}", "submitted_at": at,
                 "agent": rng.choice(_AGENTS), "labels": {"team": rng.choice(_TEAMS)},
                 "channels": rng.sample(["email", "slack", "webhook", "sms"], 2)}
        buckets[bucket_of(at)].append(entry)
    return buckets


_filler = restate.Service("BenchIndexFill")


@_filler.handler()
async def fill(ctx: restate.Context, bucket: dict[str, Any]) -> None:
    """Put one bucket's entries in the gateway's task index (``{"key": ..., "entries": []}``)."""
    await ctx.object_call(add_many, key=bucket["key"], arg=bucket["entries"])


async def _fill(http: httpx.AsyncClient, ingress: str,
                buckets: dict[str, list[dict[str, Any]]]) -> float:
    started = time.perf_counter()
    gate = asyncio.Semaphore(16)

    async def put(bucket: str, entries: list[dict[str, Any]]) -> None:
        async with gate:
            r = await http.post(f"{ingress}/BenchIndexFill/fill",
                                json={"key": bucket, "entries": entries})
            r.raise_for_status()

    await asyncio.gather(*(put(b, e) for b, e in buckets.items()))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # the bucket list is told one way: wait for it
        r = await http.post(f"{ingress}/{INDEX}/{BUCKETS_KEY}/list_buckets")
        if len(r.json()) >= len(buckets):
            break
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


async def _timed(http: httpx.AsyncClient, url: str, headers: dict[str, str],
                 times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        r = await http.get(url, headers=headers)
        r.raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"median_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 1),
            "first_ms": round(ms[0], 1)}


async def console_first_page(tasks: int = 100_000, days: float = 7.0,
                             samples: int = 20) -> dict[str, Any]:
    system = System("gateway").start()
    assert system.engine is not None
    stop = asyncio.Event()
    server: asyncio.Task[None] | None = None
    filler: asyncio.Task[None] | None = None
    try:
        key = new_key()
        config_path = system.base / "gateway.yaml"
        plugins = discover_plugins()
        config = load_config(config_path, plugins=plugins, env={})
        runtime = runtime_for(config, plugins)
        settings = ApiSettings(keys=KeyRing([ApiKey(name="bench", hash=hash_key(key),
                                                    scopes=["read", "subscribe"])]), hooks={})
        link = RestateLink(system.engine.ingress_url, system.engine.admin_url)
        app, _ = create_api(settings, runtime, link)
        port = free_port()
        server = asyncio.create_task(serve_api(app, "127.0.0.1", port, settings.limits, stop))
        fill_port = free_port()
        filler = asyncio.create_task(serve_endpoint(restate.app(services=[_filler]),
                                                    "127.0.0.1", fill_port, stop))
        # it retries until the endpoint listens
        await asyncio.to_thread(register_deployment, system.engine.admin_url,
                                f"http://127.0.0.1:{fill_port}")
        base = f"http://127.0.0.1:{port}"
        headers = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(timeout=120) as http:
            buckets = _entries(tasks, days, time.time())
            fill_s = await _fill(http, system.engine.ingress_url, buckets)
            for _ in range(100):
                try:
                    (await http.get(f"{base}/healthz")).raise_for_status()
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            page = await _timed(http, f"{base}/console/", headers, samples)
            api = await _timed(http, f"{base}/v1/tasks?limit=25", headers, samples)
            label = await _timed(http, f"{base}/console/?label=team%3Dml&agent=writer",
                                 headers, samples)
            rows = (await http.get(f"{base}/v1/tasks?limit=25", headers=headers)).json()
        await link.aclose()
        return {"tasks": tasks, "days": days, "buckets": len(buckets),
                "fill_s": round(fill_s, 1), "rows": len(rows["tasks"]),
                "console_first_page": _summary(page), "api_first_page": _summary(api),
                "console_filtered_page": _summary(label)}
    finally:
        stop.set()
        for task in (server, filler):
            if task is not None:
                await asyncio.wait_for(task, 15)
        system.stop()


if __name__ == "__main__":
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(asyncio.run(console_first_page(count)), indent=2))
