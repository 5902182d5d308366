"""Processes of a benchmark run: restate-server, the system under test, the counting sink."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.local import free_port
from gateway.local.engine import (
    INVOCATIONS_LIMIT,
    INVOCATIONS_LIMIT_ENV,
    LocalEngine,
    register_deployment,
)

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_YmVuY2htYXJrLW9ubHkta2V5LW9uLWxvb3BiYWNr"  # loopback benchmark only

GATEWAY_CONFIG = """
agents:
  default: {model: offline}
  held: {model: "offline:sleep=%(hold)s"}
channels:
  webhook:
    plugin: webhook
    options: {secret: "%(secret)s", allow_private_targets: true}
"""


#: restate-server settings of every benchmark run, the same for the gateway and the baseline:
#: the local engine's defaults, then ``BENCH_SERVER_ENV="KEY=VALUE ..."`` (to try a setting)
SERVER_SETTINGS: dict[str, str] = {
    INVOCATIONS_LIMIT_ENV: os.environ.get(INVOCATIONS_LIMIT_ENV, str(INVOCATIONS_LIMIT)),
    **dict(item.split("=", 1) for item in os.environ.get("BENCH_SERVER_ENV", "").split()
           if "=" in item),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its reaped children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its live descendants (a server's worker processes)."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += cpu_seconds(p)
        for kids in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(k) for k in kids.read_text().split()]
            except OSError:
                continue
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def machine() -> dict[str, object]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    version = subprocess.run([str(_server_binary()), "--version"], capture_output=True,
                             text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": sys.version.split()[0],
            "restate_server": version}


def _server_binary() -> Path:
    from gateway.local import find_server_binary

    return find_server_binary()


@dataclass
class System:
    """One restate-server, one service process (gateway or baseline), one sink."""

    kind: str  # "gateway" or "baseline"
    hold: float = 0.0
    #: baseline only: serve it with granian's command line and this many worker processes
    workers: int = 0
    #: baseline only: connections of its HTTP client's pool (0: its default, 512)
    pool: int = 0
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))
    engine: LocalEngine | None = None
    service: subprocess.Popen[bytes] | None = None
    sink: subprocess.Popen[bytes] | None = None
    sink_port: int = field(default_factory=free_port)
    service_port: int = field(default_factory=free_port)

    @property
    def sink_url(self) -> str:
        return f"http://127.0.0.1:{self.sink_port}"

    def start(self) -> System:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> System:
        self.engine = LocalEngine(base_dir=self.base / "restate", ingress_port=free_port(),
                                  admin_port=free_port(), node_port=free_port(),
                                  env={"RESTATE_LOG_FILTER": "warn", **SERVER_SETTINGS})
        self.engine.start()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = (self.base / "service.log").open("wb")
        self.sink = subprocess.Popen([sys.executable, "-m", "bench.sink", "--port",
                                      str(self.sink_port)], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.kind == "gateway":
            config = self.base / "gateway.yaml"
            config.write_text(GATEWAY_CONFIG % {"secret": WEBHOOK_SECRET, "hold": self.hold or 1})
            cmd = [sys.executable, "-m", "gateway", "serve", "--only", "restate",
                   "--config", str(config), "--host", "127.0.0.1",
                   "--restate-port", str(self.service_port)]
        elif self.workers:
            cmd = [sys.executable, "-m", "granian", "--interface", "asginl", "--workers",
                   str(self.workers), "--host", "127.0.0.1", "--port", str(self.service_port),
                   "--http", "auto", "--backpressure", "1000000",
                   "--http2-max-concurrent-streams", "1000000", "--log-level", "error",
                   "bench.baseline_app:app"]
        else:
            cmd = [sys.executable, "-m", "bench.baseline_app", "--port", str(self.service_port)]
        if self.pool:
            env["BENCH_FLOOR_POOL"] = str(self.pool)
        self.service = subprocess.Popen(cmd, cwd=ROOT, env={**env, "GATEWAY_LOG_LEVEL": "error"},
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # its workers stop with it
        log.close()
        _wait_port(self.service_port, self.service)
        _wait_port(self.sink_port, self.sink)
        register_deployment(self.engine.admin_url, f"http://127.0.0.1:{self.service_port}",
                            use_http_11=os.environ.get("BENCH_HTTP11") == "1")
        _settle(self.service.pid)
        return self

    def cpu(self) -> float:
        """CPU seconds of the system under test: server + service (driver, sink excluded)."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """(restate-server, service) CPU seconds so far."""
        assert self.engine is not None and self.engine.pid and self.service
        return cpu_seconds(self.engine.pid), tree_cpu_seconds(self.service.pid)

    def profile(self, out: Path) -> subprocess.Popen[bytes]:
        """py-spy recording the service process (and its children) into ``out``, raw stacks,
        until sent SIGINT."""
        assert self.service is not None
        spy = Path(sys.executable).parent / "py-spy"
        return subprocess.Popen([str(spy), "record", "--pid", str(self.service.pid),
                                 "--format", "raw", "--rate", "200", "--subprocesses",
                                 "--nonblocking", "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def service_rss(self) -> float:
        assert self.service is not None
        return rss_mb(self.service.pid)

    async def sink_stats(self, http: httpx.AsyncClient) -> dict[str, float]:
        r = await http.get(f"{self.sink_url}/stats")
        return dict(r.json())

    def stop(self) -> None:
        for proc in (self.service, self.sink):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.service is not None:
            with contextlib.suppress(ProcessLookupError):  # worker processes left behind
                os.killpg(self.service.pid, signal.SIGKILL)
        if self.engine is not None:
            self.engine.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _settle(pid: int, timeout: float = 10.0) -> None:
    """Wait until the service's start-up work is over (the gateway's channels prepare
    themselves beside its start): its CPU still for 0.3 s, or ``timeout``. Start-up is
    not a delivery's cost."""
    deadline = time.monotonic() + timeout
    before = tree_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = tree_cpu_seconds(pid)
        if now - before < 0.01:
            return
        before = now


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


async def wait_count(system: System, http: httpx.AsyncClient, want: int, timeout: float,
                     started: float) -> tuple[dict[str, float], float]:
    """Poll the sink until ``want`` deliveries (or ``timeout``); (stats, seconds since start)."""
    stats: dict[str, float] = {}
    while time.monotonic() - started < timeout:
        stats = await system.sink_stats(http)
        if stats["unique"] >= want:
            break
        await asyncio.sleep(0.05)
    return stats, time.monotonic() - started
