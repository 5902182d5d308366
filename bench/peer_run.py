"""The Celery peer's processes for one throughput round: redis-server, a Celery worker, the
sink; CPU is redis-server + the worker (and any children), as for the gateway."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import ROOT, tree_cpu_seconds
from gateway.local import free_port

#: the peer's own environment, made by ``make bench-setup``
PEER_PYTHON = ROOT / ".tools" / "celery-peer" / "bin" / "python"


def peer_missing() -> str | None:
    """Why the peer cannot run here (what to run), or None."""
    if not shutil.which("redis-server"):
        return "redis-server is not installed: run `make bench-setup`"
    if not PEER_PYTHON.exists():
        return "the Celery peer's environment is missing: run `make bench-setup`"
    return None


def _start(base: Path, redis_port: int, sink_port: int, env: dict[str, str],
           worker_log: Path) -> list[subprocess.Popen[bytes]]:
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                          "--dir", str(base)], **quiet),
        subprocess.Popen([sys.executable, "-m", "bench.sink", "--port", str(sink_port)],
                         cwd=ROOT, env=env, **quiet),
    ]
    with worker_log.open("wb") as log:
        procs.append(subprocess.Popen(
            [str(PEER_PYTHON), "-m", "celery", "-A", "bench.peer.celery_app", "worker",
             "--pool=threads", "--concurrency=32", "--loglevel=info", "--without-gossip",
             "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


async def celery_round(tasks: int, subs: int, timeout: float = 600) -> dict[str, Any]:
    """``tasks`` x ``subs`` through Celery + Redis, all submitted at once."""
    base = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    redis_port, sink_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "PEER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    worker_log = base / "worker.log"
    procs = _start(base, redis_port, sink_port, env, worker_log)
    redis, _, worker = procs
    sink = f"http://127.0.0.1:{sink_port}"
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in worker_log.read_bytes():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the Celery worker did not start:\n"
                                   + worker_log.read_text()[-2000:])
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(timeout=30) as http:
            driver = await asyncio.create_subprocess_exec(
                str(PEER_PYTHON), "-m", "bench.peer.drive", "--tasks", str(tasks), "--subs",
                str(subs), "--sink", sink, cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            assert driver.stdin is not None and driver.stdout is not None
            await asyncio.wait_for(driver.stdout.readline(), 60)  # imported, broker answers
            redis0, worker0 = tree_cpu_seconds(redis.pid), tree_cpu_seconds(worker.pid)
            t0 = time.monotonic()
            driver.stdin.write(b"go\n")
            await driver.stdin.drain()
            want, stats = tasks * subs, {}
            while time.monotonic() - t0 < timeout:
                stats = (await http.get(f"{sink}/stats")).json()
                if stats["unique"] >= want:
                    break
                await asyncio.sleep(0.05)
            wall = time.monotonic() - t0
            redis_cpu = tree_cpu_seconds(redis.pid) - redis0
            cpu = redis_cpu + tree_cpu_seconds(worker.pid) - worker0
            await driver.wait()
        delivered = int(stats.get("unique", 0))
        return {"system": "celery", "tasks": tasks, "subscriptions": subs, "deliveries": want,
                "delivered": delivered, "lost": want - delivered,
                "duplicates": int(stats.get("duplicates", 0)), "wall_s": round(wall, 2),
                "deliveries_per_s": round(delivered / wall, 1), "cpu_s": round(cpu, 2),
                "cpu_ms_per_delivery": round(1000 * cpu / max(delivered, 1), 2),
                # the "server" is redis-server, the "service" the Celery worker
                "server_cpu_ms_per_delivery": round(1000 * redis_cpu / max(delivered, 1), 2),
                "service_cpu_ms_per_delivery": round(1000 * (cpu - redis_cpu)
                                                     / max(delivered, 1), 2),
                "p50_ms": stats.get("p50_ms"), "p99_ms": stats.get("p99_ms")}
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(base, ignore_errors=True)
