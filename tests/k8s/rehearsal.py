"""A local rehearsal of a rendered install: the objects' own commands, env, volumes and probes,
run as processes on loopback, with just enough of Kubernetes imitated to keep it honest.

- A Service is a loopback port; a Service in front of gateway pods forwards a connection only
  while the pod's readiness probe passes (a ClusterIP Service has no endpoints for an unready
  pod: the connection is refused), so a readiness that waits on something needing the Service
  never comes, as in a cluster.
- URLs ``http://name[.namespace[.svc[.cluster.local]]]:port`` in env values and args that name
  a Service of the install are rewritten to its loopback port; any other in-cluster looking
  host is reported, so a URL pointing nowhere fails the rehearsal instead of passing silently.
- The kubelet's probes are HTTP GETs on the container's path and (named) port: success is a
  status from 200 to 399 within ``timeoutSeconds``. Periods are shortened to keep it quick.
- Volumes: a ConfigMap volume is a directory with its keys as files, an emptyDir an empty one;
  paths under a mount in env values are rewritten to the directory.
- The container's command is the image's ENTRYPOINT (deploy/k8s/Dockerfile) unless the
  container sets ``command``; it runs from this checkout's virtualenv.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway.local import free_port
from tests.k8s import k8s_support as k

URL = re.compile(r"\b(https?://)([a-z0-9][a-z0-9-]*)((?:\.[a-z0-9-]+)*):(\d+)")
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


_TAKEN: set[int] = set()


def pick_port() -> int:
    """A free loopback port not handed out before in this run (a port picked but not yet bound
    is free to the OS too, so free_port() alone can give the same one twice)."""
    for _ in range(100):
        port = free_port()
        if port not in _TAKEN:
            _TAKEN.add(port)
            return port
    raise AssertionError("no free loopback port")


def image_entrypoint() -> list[str]:
    """ENTRYPOINT of the gateway image, resolved to this checkout's virtualenv."""
    text = (k.K8S / "Dockerfile").read_text()
    entry = json.loads(re.findall(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE)[-1])
    first = Path(sys.executable).parent / entry[0]
    return [str(first), *entry[1:]]


# --- Services ----------------------------------------------------------------------------------


class ServiceProxies:
    """Loopback ports standing for Services: each forwards to a backend port while ``ready()``."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []
        self.refused = 0

    def add(self, backend: int, ready: Callable[[], bool]) -> int:
        port = pick_port()
        future = asyncio.run_coroutine_threadsafe(self._serve(port, backend, ready), self._loop)
        self._servers.append(future.result(10))
        return port

    async def _serve(self, port: int, backend: int, ready: Callable[[], bool]) -> asyncio.Server:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            with contextlib.suppress(OSError):
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not ready():
                self.refused += 1
                writer.transport.abort()  # no ready endpoint: refused
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend)
            except OSError:
                writer.transport.abort()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        return await asyncio.start_server(handle, "127.0.0.1", port)

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class Network:
    """Service DNS names of the install, as loopback ports."""

    namespace: str
    #: (service, namespace) -> {service port: loopback port}
    services: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    #: in-cluster looking hosts that name no Service of the install
    unresolved: set[str] = field(default_factory=set)

    def add(self, name: str, namespace: str, ports: Mapping[int, int]) -> None:
        self.services[(name, namespace)] = dict(ports)

    def rewrite(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            scheme, name, rest, port = match.groups()
            parts = [p for p in rest.split(".") if p]
            if parts and parts[1:] not in ([], ["svc"], ["svc", "cluster", "local"]):
                return match.group(0)  # not a Service name (e.g. smtp.example.com)
            namespace = parts[0] if parts else self.namespace
            local = self.services.get((name, namespace), {}).get(int(port))
            if local is None:
                self.unresolved.add(match.group(0))
                return match.group(0)
            return f"{scheme}127.0.0.1:{local}"

        return URL.sub(one, text)


# --- a pod's container -------------------------------------------------------------------------


@dataclass
class Container:
    """One container of a rendered pod template, ready to run as a local process."""

    obj: dict[str, Any]
    template: dict[str, Any]
    spec: dict[str, Any]
    workdir: Path
    #: container port (number) -> loopback port the process listens on
    ports: dict[int, int] = field(default_factory=dict)

    @property
    def named_ports(self) -> dict[str, int]:
        return {p["name"]: p["containerPort"] for p in self.spec.get("ports") or [] if "name" in p}

    def local_port(self, port: int | str) -> int:
        number = self.named_ports[port] if isinstance(port, str) else port
        return self.ports[number]

    def mounts(self, objs: list[dict[str, Any]]) -> dict[str, Path]:
        """mountPath -> a local directory holding what the volume holds."""
        volumes = {v["name"]: v for v in self.template["spec"].get("volumes") or []}
        out = {}
        for mount in self.spec.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            directory = self.workdir / "volumes" / mount["name"]
            directory.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                configmap = k.one(objs, "ConfigMap", volume["configMap"]["name"])
                for key, value in (configmap.get("data") or {}).items():
                    (directory / key).write_text(value)
            out[mount["mountPath"]] = directory
        return out

    def env(self, objs: list[dict[str, Any]], secrets: Mapping[str, str], network: Network,
            pod_name: str) -> dict[str, str]:
        mounts = self.mounts(objs)
        env = {"PATH": str(Path(sys.executable).parent), "HOME": str(self.workdir)}
        for item in self.spec.get("env") or []:
            name, source = item["name"], item.get("valueFrom") or {}
            if "value" in item:
                value = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), str(item["value"]))
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                if ref["key"] not in secrets:
                    assert ref.get("optional"), f"CreateContainerConfigError: {name}"
                    continue
                value = secrets[ref["key"]]
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                value = k.one(objs, "ConfigMap", ref["name"])["data"][ref["key"]]
            elif "fieldRef" in source:
                value = {"metadata.name": pod_name,
                         "metadata.namespace": network.namespace}[source["fieldRef"]["fieldPath"]]
            else:
                raise AssertionError(f"env {name}: unsupported source {source}")
            for mount_path in sorted(mounts, key=len, reverse=True):
                if value.startswith(mount_path + "/"):
                    value = str(mounts[mount_path]) + value[len(mount_path):]
                    break
            env[name] = network.rewrite(value)
        return env

    def argv(self, network: Network) -> list[str]:
        command = self.spec.get("command") or image_entrypoint()
        args = []
        for arg in self.spec.get("args") or []:
            option, sep, value = arg.partition("=")
            if sep and option.endswith("-port") and value.isdigit() and int(value) in self.ports:
                arg = f"{option}={self.ports[int(value)]}"  # the pod's port, on this machine
            args.append(network.rewrite(arg))
        return [*command, *args]


@dataclass
class Process:
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.proc.wait(timeout)
        return None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        if self.wait(15) is None:
            self.proc.kill()
            self.wait(5)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# --- the kubelet's probes ----------------------------------------------------------------------


@dataclass
class ProbeResult:
    kind: str
    url: str
    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400


def probe(container: Container, kind: str) -> ProbeResult:
    """One probe, as the kubelet makes it (HTTP GET only: that is all the gateway declares)."""
    spec = container.spec[kind]
    get = spec["httpGet"]
    url = f"http://127.0.0.1:{container.local_port(get['port'])}{get.get('path', '/')}"
    try:
        r = httpx.get(url, timeout=spec.get("timeoutSeconds", 1))
    except httpx.HTTPError as exc:
        return ProbeResult(kind, url, None, type(exc).__name__)
    return ProbeResult(kind, url, r.status_code, None if r.status_code < 400 else r.text[:300])


class Kubelet:
    """Runs a container's probes in the background: the startup probe until it passes, then
    readiness and liveness. ``ready`` is what the Services route on."""

    def __init__(self, container: Container, period: float = 0.5) -> None:
        self.container = container
        self.period = period
        self.results: list[ProbeResult] = []
        self.ready = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Kubelet:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = "startupProbe" not in self.container.spec
        while not self._stop.wait(self.period):
            if not started:
                result = probe(self.container, "startupProbe")
                self.results.append(result)
                started = result.ok
                continue
            for kind in ("readinessProbe", "livenessProbe"):
                result = probe(self.container, kind)
                self.results.append(result)
                if kind == "readinessProbe":
                    self.ready = result.ok

    def passed(self, kind: str) -> bool:
        return any(r.kind == kind and r.ok for r in self.results)

    def last(self, kind: str) -> ProbeResult | None:
        return next((r for r in reversed(self.results) if r.kind == kind), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@contextlib.contextmanager
def stopping(*things: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in reversed(things):
            thing.stop() if hasattr(thing, "stop") else thing.close()
