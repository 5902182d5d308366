"""The benchmark scenarios. Each returns a dict of figures; nothing is asserted."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.harness import System, wait_count

LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64)


def _run_url(system: System, key: str, handler: str) -> str:
    assert system.engine is not None
    service = "AsyncNotificationsAgent" if system.kind == "gateway" else "BenchBaseline"
    return f"{system.engine.ingress_url}/restate/send/{service}/{key}/{handler}"


async def _submit(system: System, http: httpx.AsyncClient, key: str, targets: list[str],
                  agent: str = "default", path: str = "own") -> None:
    """One task with its subscribers: for the gateway, as the task's own subscriptions
    (``path="own"``) or the seed's way, one ``on_notify`` per subscriber through the ingress
    (``"seed"``); the baseline always the seed's way."""
    if system.kind == "gateway":
        own = targets if path == "own" else []
        body = {"prompt": f"benchmark task {key}", "agent": agent,
                "subscriptions": [f"webhook:{t}" for t in own]}
        (await http.post(_run_url(system, key, "run"), json=body)).raise_for_status()
        for target in targets if path == "seed" else []:
            r = await http.post(_run_url(system, key, "on_notify"), json=f"webhook:{target}")
            r.raise_for_status()
    else:
        (await http.post(_run_url(system, key, "run"), json=f"task {key}")).raise_for_status()
        for target in targets:
            (await http.post(_run_url(system, key, "on_notify"), json=target)).raise_for_status()


async def throughput(kind: str, tasks: int, subs: int, concurrency: int = 32,
                     timeout: float = 900, path: str = "own",
                     profile: Path | None = None, workers: int = 0,
                     pool: int = 0) -> dict[str, Any]:
    """``tasks`` x ``subs`` submitted at once: deliveries/s, losses, duplicates, CPU.
    ``profile``: record the service process with py-spy into this file (raw stacks);
    ``workers``: the baseline served by that many granian worker processes; ``pool``: the
    baseline's HTTP client pool (0: 512 connections)."""
    system = System(kind, workers=workers, pool=pool).start()
    spy = system.profile(profile) if profile is not None else None
    try:
        async with httpx.AsyncClient(limits=LIMITS, timeout=120) as http:
            run = uuid.uuid4().hex[:6]
            sem = asyncio.Semaphore(concurrency)
            (server0, service0), t0 = system.cpu_split(), time.monotonic()

            async def one(i: int) -> None:
                async with sem:
                    await _submit(system, http, f"tp-{run}-{i}",
                                  [f"{system.sink_url}/h/{i}/{c}" for c in range(subs)],
                                  path=path)

            await asyncio.gather(*(one(i) for i in range(tasks)))
            want = tasks * subs
            stats, wall = await wait_count(system, http, want, timeout, t0)
            server1, service1 = system.cpu_split()
        server, service = server1 - server0, service1 - service0
        cpu = server + service
        delivered = int(stats.get("unique", 0))
        return {
            "server_cpu_ms_per_delivery": round(1000 * server / max(delivered, 1), 2),
            "service_cpu_ms_per_delivery": round(1000 * service / max(delivered, 1), 2),
            "system": kind, "path": path, "workers": workers or 1, "pool": pool or None,
            "tasks": tasks,
            "subscriptions": subs, "deliveries": want,
            "delivered": delivered, "lost": want - delivered,
            "duplicates": int(stats.get("duplicates", 0)), "wall_s": round(wall, 2),
            "deliveries_per_s": round(delivered / wall, 1), "cpu_s": round(cpu, 2),
            "cpu_ms_per_delivery": round(1000 * cpu / max(delivered, 1), 2),
            "p50_ms": stats.get("p50_ms"), "p99_ms": stats.get("p99_ms"),
            "service_rss_mb": system.service_rss(),
        }
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(60)
        system.stop()


async def latency(rate: float, seconds: float, subs: int = 3) -> dict[str, Any]:
    """A steady offered load: promise resolution to receiver, p50/p95/p99."""
    system = System("gateway").start()
    try:
        async with httpx.AsyncClient(limits=LIMITS, timeout=60) as http:
            run = uuid.uuid4().hex[:6]
            pending: set[asyncio.Task[None]] = set()
            t0 = time.monotonic()
            n = int(rate * seconds)
            for i in range(n):
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                task = asyncio.create_task(_submit(
                    system, http, f"lat-{run}-{i}",
                    [f"{system.sink_url}/h/{i}/{c}" for c in range(subs)]))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)
            stats, _ = await wait_count(system, http, n * subs, 120, t0)
        return {"offered_tasks_per_s": rate, "seconds": seconds, "subscriptions": subs,
                "delivered": int(stats.get("unique", 0)), "deliveries": n * subs,
                "p50_ms": stats.get("p50_ms"), "p95_ms": stats.get("p95_ms"),
                "p99_ms": stats.get("p99_ms"), "max_ms": stats.get("max_ms")}
    finally:
        system.stop()


async def _suspended(system: System, http: httpx.AsyncClient) -> int:
    assert system.engine is not None
    r = await http.post(f"{system.engine.admin_url}/query", headers={"accept": "application/json"},
                        json={"query": "SELECT count(*) AS n FROM sys_invocation WHERE "
                                       "target_handler_name = 'on_notify' AND "
                                       "status = 'suspended'"})
    r.raise_for_status()
    return int(r.json()["rows"][0]["n"])


async def waiting(tasks: int, per_task: int, timeout: float = 900) -> dict[str, Any]:
    """``tasks * per_task`` subscribers waiting on unfinished tasks, then every task finishes:
    the gateway process's memory before, while waiting and after."""
    system = System("gateway").start()
    try:
        async with httpx.AsyncClient(limits=LIMITS, timeout=120) as http:
            await asyncio.sleep(2)
            idle = system.service_rss()
            run = uuid.uuid4().hex[:6]
            sem = asyncio.Semaphore(32)
            want = tasks * per_task

            async def subscribe(i: int) -> None:
                async with sem:
                    key = f"wait-{run}-{i}"
                    for c in range(per_task):
                        r = await http.post(_run_url(system, key, "on_notify"),
                                            json=f"webhook:{system.sink_url}/h/{i}/{c}")
                        r.raise_for_status()

            t0 = time.monotonic()
            await asyncio.gather(*(subscribe(i) for i in range(tasks)))
            while await _suspended(system, http) < want and time.monotonic() - t0 < timeout:
                await asyncio.sleep(0.5)
            subscribed_s = time.monotonic() - t0
            await asyncio.sleep(2)
            suspended = await _suspended(system, http)
            while_waiting = system.service_rss()
            print(json.dumps({"waiting": {"subscribers": want, "suspended": suspended,
                                          "subscribe_s": round(subscribed_s, 1),
                                          "rss_idle_mb": idle, "rss_waiting_mb": while_waiting}}),
                  flush=True)

            async def finish(i: int) -> None:
                async with sem:
                    await _submit(system, http, f"wait-{run}-{i}", [])

            t1 = time.monotonic()
            await asyncio.gather(*(finish(i) for i in range(tasks)))
            stats, wall = await wait_count(system, http, want, timeout, t1)
            after = system.service_rss()
        return {"tasks": tasks, "subscribers": want, "suspended_while_waiting": suspended,
                "subscribe_s": round(subscribed_s, 1), "rss_idle_mb": idle,
                "rss_waiting_mb": while_waiting, "rss_after_mb": after,
                "waiting_minus_idle_mb": round(while_waiting - idle, 1),
                "delivered": int(stats.get("unique", 0)), "deliver_all_s": round(wall, 1)}
    finally:
        system.stop()


async def fanout(sizes: list[int], timeout: float = 600) -> list[dict[str, Any]]:
    """One task with N subscribers: time to deliver all, CPU per delivery, per N."""
    system = System("gateway").start()
    out = []
    try:
        async with httpx.AsyncClient(limits=LIMITS, timeout=120) as http:
            for n in sizes:
                await http.post(f"{system.sink_url}/reset")
                key = f"fan-{uuid.uuid4().hex[:6]}-{n}"
                cpu0, t0 = system.cpu(), time.monotonic()
                await _submit(system, http, key, [f"{system.sink_url}/f/{c}" for c in range(n)])
                stats, wall = await wait_count(system, http, n, timeout, t0)
                cpu = system.cpu() - cpu0
                delivered = int(stats.get("unique", 0))
                receipts = await _receipts_final(system, http, key, n, timeout, t0)
                out.append({"subscribers": n, "delivered": delivered, "wall_s": round(wall, 2),
                            "cpu_ms_per_delivery": round(1000 * cpu / max(delivered, 1), 2),
                            "receipts_final_s": receipts})
    finally:
        system.stop()
    return out


async def _receipts_final(system: System, http: httpx.AsyncClient, key: str, n: int,
                          timeout: float, t0: float) -> float | None:
    """Seconds from the submission until the task's status shows ``n`` final receipts (the
    receipts are recorded one at a time per task, behind the deliveries); None: not in time.
    Asked once a second: a status of 1,000 receipts costs about 0.15 s of CPU, and asking
    more often slows what it measures."""
    assert system.engine is not None
    url = f"{system.engine.ingress_url}/AsyncNotificationsAgent/{key}/status"
    while time.monotonic() - t0 < timeout:
        status = (await http.post(url)).json()
        final = [d for d in status.get("deliveries", []) if d["state"] not in
                 ("waiting", "retrying")]
        if len(final) >= n:
            return round(time.monotonic() - t0, 2)
        await asyncio.sleep(1.0)
    return None
