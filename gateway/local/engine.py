"""The local engine: start and stop a single-node restate-server, and register the gateway.

The server binary is the one pinned in ``package.json`` and installed by ``npm ci``; it is
started on loopback ports with its data under a directory of ours, so a restart of the same
directory loses nothing. ``register`` works against any Restate server or cluster.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.core import EngineError
from gateway.observability import restate_server_tracing_env

__all__ = ["LocalEngine", "find_server_binary", "port_in_use", "register_deployment",
           "wait_healthy"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: the server setting bounding concurrent invocations (per partition); the environment's
#: value wins
INVOCATIONS_LIMIT_ENV = "RESTATE_WORKER__INVOKER__CONCURRENT_INVOCATIONS_LIMIT"
INVOCATIONS_LIMIT = 16


def _native_package() -> str:
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    return f"restate-server-{platform.system().lower()}-{arch}"


def find_server_binary(explicit: str | None = None) -> Path:
    """The restate-server binary: ``explicit``, ``$RESTATE_SERVER_BIN``, the npm-installed
    native binary of this project, or one on ``PATH``."""
    for value, where in ((explicit, "given"), (os.environ.get("RESTATE_SERVER_BIN"),
                                                "RESTATE_SERVER_BIN")):
        if value:
            path = Path(value)
            if path.is_file() and os.access(path, os.X_OK):
                return path
            raise EngineError(
                f"restate-server binary {where} as {value} does not exist or is not executable: "
                "fix the path, or unset it to use the one `npm ci` installs"
            )
    candidates: list[Path] = []
    modules = PROJECT_ROOT / "node_modules" / "@restatedev"
    candidates.append(modules / _native_package() / "bin" / "restate-server")
    on_path = shutil.which("restate-server")
    if on_path:
        candidates.append(Path(on_path))
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    raise EngineError(
        "restate-server binary not found (looked at "
        + ", ".join(str(c) for c in candidates[:3])
        + "): run `npm ci` in the project directory, or set RESTATE_SERVER_BIN"
    )


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None,
                 log: Path | None = None) -> None:
    """Poll ``url`` until it answers below 500, the process dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise EngineError(
                    f"restate-server exited with code {proc.returncode} during start-up"
                    + _log_tail(log)
                )
            try:
                if client.get(url).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise EngineError(f"{url} did not answer within {timeout:.0f}s" + _log_tail(log))


def _log_tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "; server log (last lines):\n  " + "\n  ".join(tail) if tail else ""


def register_deployment(admin_url: str, service_url: str, *, timeout: float = 60.0,
                        use_http_11: bool = False,
                        on_retry: Callable[[str], None] | None = None) -> dict[str, object]:
    """Register (or re-register, forcing) the gateway's Restate endpoint with the server.
    ``on_retry`` hears why an attempt failed: the first time, then every 10 s while retrying."""
    deadline = time.monotonic() + timeout
    last = ""
    report_at = 0.0
    body = {"uri": service_url, "force": True, "use_http_11": use_http_11}
    with httpx.Client(timeout=30.0) as client:
        while time.monotonic() < deadline:
            try:
                r = client.post(f"{admin_url.rstrip('/')}/deployments", json=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code < 300:
                    result: dict[str, object] = r.json()
                    return result
                last = f"HTTP {r.status_code}: {r.text.strip()[:300]}"
                if r.status_code < 500 and "discover" not in r.text.lower():
                    break
            if on_retry is not None and time.monotonic() >= report_at:
                on_retry(last)
                report_at = time.monotonic() + 10.0
            time.sleep(0.5)
    raise EngineError(
        f"could not register {service_url} with the Restate admin API at {admin_url}: {last}"
    )


@dataclass
class LocalEngine:
    """A single-node restate-server on this machine."""

    base_dir: Path
    ingress_port: int = 8080
    admin_port: int = 9070
    node_port: int = 5122
    host: str = "127.0.0.1"
    binary: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    startup_timeout: float = 60.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def ingress_url(self) -> str:
        return f"http://{self._public_host}:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self._public_host}:{self.admin_port}"

    @property
    def ui_url(self) -> str:
        return f"{self.admin_url}/ui"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "restate-server.log"

    @property
    def _public_host(self) -> str:
        return "localhost" if self.host in ("127.0.0.1", "0.0.0.0") else self.host

    def server_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "RESTATE_BASE_DIR": str(self.base_dir),
            "RESTATE_INGRESS__BIND_ADDRESS": f"{self.host}:{self.ingress_port}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"{self.host}:{self.admin_port}",
            "RESTATE_BIND_ADDRESS": f"{self.host}:{self.node_port}",
            "RESTATE_ADVERTISED_ADDRESS": f"http://{self.host}:{self.node_port}",
            "RESTATE_NODE_NAME": "gateway-local",
            "RESTATE_LOG_FORMAT": env.get("RESTATE_LOG_FORMAT", "compact"),
            "RESTATE_DISABLE_TELEMETRY": "true",
            "RESTATE_LISTEN_MODE": "tcp",
        })
        # how many invocations the server pushes to the gateway at once, per partition (24):
        # a burst of subscribers (10,000 resumed when their tasks finish) then queues in the
        # server instead of in the gateway's memory; measured with the benchmarks (bench/)
        env.setdefault(INVOCATIONS_LIMIT_ENV, str(INVOCATIONS_LIMIT))
        # its invocation spans go to the gateway's OTLP endpoint, in the tasks' traces, under
        # the server's own service name (OTEL_SERVICE_NAME names the gateway)
        env.update(restate_server_tracing_env(env))
        env.pop("OTEL_SERVICE_NAME", None)
        env.update(self.env)
        return env

    def start(self) -> None:
        """Start the server and wait until its admin API and ingress answer."""
        self.start_process()
        self.wait_ready()

    def wait_ready(self) -> None:
        try:
            wait_healthy(f"{self.admin_url}/health", self.startup_timeout, self._proc,
                         self.log_path)
            wait_healthy(f"{self.ingress_url}/restate/health", self.startup_timeout, self._proc,
                         self.log_path)
        except EngineError:
            self.stop()
            raise

    def start_process(self) -> None:
        """Start the server process without waiting for it (a cluster node waits for peers)."""
        binary = self.binary or find_server_binary()
        for name, port in (("ingress", self.ingress_port), ("admin", self.admin_port),
                           ("node", self.node_port)):
            if port_in_use(self.host, port):
                raise EngineError(
                    f"port {port} ({name}) on {self.host} is in use: stop what listens there "
                    f"or pick another with --{name}-port"
                )
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [str(binary), "--no-logo"], env=self.server_env(), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        return _log_tail(self.log_path, lines)
