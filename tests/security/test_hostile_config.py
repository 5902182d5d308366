"""Hostile configuration files: each is a one-line error, quickly, in bounded memory.

``gateway config check`` runs as the real CLI in a subprocess (with an address-space cap, so
a regression fails with a MemoryError rather than taking the machine's memory); its peak
resident memory is the process's own high-water mark (``VmHWM``, read as it exits: ``wait4``
would also count the pages of the forked test process). A live ``gateway serve`` gets the same
files on SIGHUP and keeps serving its old configuration.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.channels import discover_plugins
from gateway.config import load_config
from gateway.core import ConfigError
from gateway.local import free_port
from tests.support.process import wait_until

#: generous bound for the whole CLI process (start-up included), only to prove the check
#: terminates; the measured times are printed (unbounded, these took 45 s to 320 s and more)
DONE_WITHIN = 30.0
#: Python memory the parse itself may allocate (tracemalloc peak)
PARSE_PEAK_MB = 50
#: peak resident memory of the whole CLI process (imports included: about 60 MB)
PEAK_RSS_MB = 200
#: address space the CLI may map: a regression fails with MemoryError, not by swapping
ADDRESS_SPACE = 2 * 1024**3

HOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _alias_bomb() -> str:
    """The "billion laughs": 9 levels of 9 aliases, about 400 bytes, 387 million values."""
    lines = ['x0: &x0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"x{i}: &x{i} [{','.join([f'*x{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def _self_alias() -> str:
    return "channels: &loop\n  email: {options: {host: localhost}}\n  more: *loop\n"


def _deep() -> str:
    return "agents: " + "[" * 100_000 + "]" * 100_000 + "\n"


def _deep_block() -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(500)) + "  " * 500 + "v: 1\n"


def _huge() -> str:
    return "# padding\n" + "a: 1\n" + "# " + "x" * (50 * 1024 * 1024) + "\n"


def _template(source: str) -> str:
    return f"templates:\n  t:\n    text: {json.dumps(source)}\n"


def _hook(prompt: str) -> str:
    return (f"hooks:\n  orders:\n    secret: {HOOK_SECRET}\n    prompt: {json.dumps(prompt)}\n")


NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
NESTED_SMALL_LOOPS = ("{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}"
                      "{% endfor %}")


@dataclass(frozen=True)
class Hostile:
    name: str
    text: Callable[[], str]
    #: what the one error line says
    says: str


HOSTILE = [
    Hostile("alias-bomb", _alias_bomb, "expands to more than 100,000 values"),
    Hostile("self-alias", _self_alias, "an alias refers to a value that contains it"),
    Hostile("deep-flow", _deep, "nested more than 50 levels deep"),
    Hostile("deep-block", _deep_block, "nested more than 50 levels deep"),
    Hostile("50-MB-file", _huge, "may have at most 1 MiB (1,048,576 bytes)"),
    Hostile("string-bomb", lambda: _template("{{ 'a' * 300000000 }}"),
            "'*' would build 300,000,000 items"),
    Hostile("power-bomb", lambda: _template("{{ 2 ** 1000000000 }}"), "'**' would build"),
    Hostile("nested-range", lambda: _template(NESTED_LOOPS), "range() of 100,000 items"),
    Hostile("nested-loops", lambda: _template(NESTED_SMALL_LOOPS),
            "loops of this template ran more than 100,000 times"),
    Hostile("format-width", lambda: _template("{{ '%999999999d' | format(1) }}"),
            "a format width of a million or more"),
    Hostile("recursion", lambda: _template("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"),
            "recurses too deeply"),
    Hostile("deep-template", lambda: _template("{{ " + "(" * 10_000 + "1" + ")" * 10_000 + " }}"),
            "nested too deeply to compile"),
    Hostile("hook-prompt", lambda: _hook("{{ 'a' * 300000000 }}"),
            "hooks.orders.prompt: fails on an empty payload"),
]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


# ``python -m gateway ARGS`` that writes its peak resident memory (kB) to argv[1] as it exits
_MEASURED_CLI = """
import atexit, runpy, sys
peak_file = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(peak_file, "w") as out:
        out.write(kb)
atexit.register(peak)
sys.argv[0] = "gateway"
runpy.run_module("gateway", run_name="__main__", alter_sys=True)
"""


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _check(path: Path, timeout: float = 60) -> Run:
    """``gateway config check PATH`` as a process: exit code, output, time, peak RSS."""
    out, err = path.with_suffix(".out"), path.with_suffix(".err")
    with out.open("w") as stdout, err.open("w") as stderr:
        started = time.perf_counter()
        peak = path.with_suffix(".peak")
        proc = subprocess.Popen(
            [sys.executable, "-c", _MEASURED_CLI, str(peak), "config", "check", str(path)],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            preexec_fn=_limit_address_space,
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            proc.wait()
        finally:
            killer.cancel()
        seconds = time.perf_counter() - started
    peak_kb = float(peak.read_text()) if peak.exists() else float("inf")
    return Run(proc.returncode, out.read_text(), err.read_text(), seconds, peak_kb / 1024)


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.name for h in HOSTILE])
def test_config_check_refuses_a_hostile_file_in_one_line(tmp_path: Path,
                                                         hostile: Hostile) -> None:
    path = tmp_path / f"{hostile.name}.yaml"
    path.write_text(hostile.text(), encoding="utf-8")
    run = _check(path)
    print(f"{hostile.name}: {path.stat().st_size:,} bytes -> exit {run.code} in "
          f"{run.seconds:.2f} s, peak RSS {run.peak_mb:.0f} MB")
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.code == 1, run.stderr[-2000:]
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr[-2000:]
    assert lines[0].startswith(str(path)) and hostile.says in lines[0], lines[0]
    assert run.seconds < DONE_WITHIN
    assert run.peak_mb < PEAK_RSS_MB
    # the same load in this process: how long the parse itself takes, and what it allocates
    plugins = discover_plugins()
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_config(path, plugins=plugins)
    took = time.perf_counter() - started
    assert str(caught.value) == lines[0]
    tracemalloc.start()
    with pytest.raises(ConfigError):
        load_config(path, plugins=plugins)
    peak = tracemalloc.get_traced_memory()[1] / 1024**2
    tracemalloc.stop()
    print(f"  in-process: refused in {took * 1000:.0f} ms, {peak:.1f} MB allocated at peak")
    assert peak < PARSE_PEAK_MB


def test_limits_leave_ordinary_anchors_and_templates_alone(tmp_path: Path) -> None:
    """Merge keys, a few aliases and loops well within the budget still work."""
    path = tmp_path / "ok.yaml"
    path.write_text(
        "channels:\n  email: &email {retry: {max_attempts: 4}}\n  mail2:\n"
        "    <<: *email\n    plugin: email\n"
        "templates:\n  t:\n    text: \"{% for i in range(1000) %}{{ i }}{% endfor %}"
        "{{ 'ab' * 1000 }} {{ '%5d' | format(3) }}\"\n",
        encoding="utf-8",
    )
    run = _check(path)
    assert run.code == 0, run.stderr
    assert "ok — 1 agent, 2 channels, 0 subscriptions, 1 template" in run.stdout


def test_a_template_over_the_budget_fails_its_rendering_with_a_clear_error() -> None:
    from gateway.channels.render import _run
    from gateway.core import RenderError
    from gateway.core.template_limits import render_limited
    from gateway.core.templates import environment

    template = environment("plain").from_string("{{ task.output * 100000 }}")
    started = time.perf_counter()
    with pytest.raises(RenderError) as caught:
        _run(None, "text", template, {"task": {"output": "x" * 1000}})
    print(f"refused in {time.perf_counter() - started:.3f} s")
    assert str(caught.value) == ("template '(default)' text: TemplateLimitError: '*' would "
                                 "build 100,000,000 items; at most 1,000,000")
    ok = environment("plain").from_string("{{ task.output * 3 }}")
    assert render_limited(ok, {"task": {"output": "ab"}}) == "ababab"


# --- a live gateway gets them on SIGHUP ------------------------------------------------------


VALID = (
    "hooks:\n  orders:\n"
    f"    secret: {HOOK_SECRET}\n"
    "    prompt: 'order {{ payload.id }}'\n"
)


class LiveApi:
    def __init__(self, config: Path) -> None:
        self.port = free_port()
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--only", "api",
             "--host", "127.0.0.1", "--api-port", str(self.port),
             "--restate-ingress-url", f"http://127.0.0.1:{free_port()}"],
            env={**os.environ, "GATEWAY_LOG_FORMAT": "json", "GATEWAY_LOG_LEVEL": "info"},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, preexec_fn=_limit_address_space,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def hook_status(self) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/hooks/orders", data=b"{}", method="POST",
            headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def reload_and_wait(self, marker: str, timeout: float = 20) -> list[str]:
        seen = len(self.lines)
        self.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: any(marker in line for line in self.lines[seen:]), timeout), \
            "\n".join(self.lines[-20:])
        time.sleep(0.2)  # the API's settings are swapped right after the runtime's
        return self.lines[seen:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[LiveApi, Path]]:
    config = tmp_path / "gateway.yaml"
    config.write_text(VALID, encoding="utf-8")
    api = LiveApi(config)
    try:
        assert wait_until(lambda: api.hook_status() != 0, 60), "\n".join(api.lines[-20:])
        yield api, config
    finally:
        api.stop()


def test_a_live_gateway_keeps_its_configuration_when_a_reload_is_hostile(
        live: tuple[LiveApi, Path]) -> None:
    api, config = live
    assert api.hook_status() == 401  # the hook is configured: an unsigned request is refused
    for hostile in (HOSTILE[0], HOSTILE[2], HOSTILE[4], HOSTILE[5], HOSTILE[8]):
        config.write_text(hostile.text(), encoding="utf-8")
        started = time.perf_counter()
        new = api.reload_and_wait("configuration reload refused")
        print(f"{hostile.name}: reload refused in {time.perf_counter() - started:.2f} s")
        refused = [line for line in new if "configuration reload refused" in line]
        assert len(refused) == 1
        assert hostile.says in json.loads(refused[0])["event"]
        assert not any("Traceback" in line for line in new)
        assert api.proc.poll() is None
        assert api.hook_status() == 401  # still the old configuration
    config.write_text("agents: {default: {}}\n", encoding="utf-8")  # valid, without the hook
    api.reload_and_wait("configuration reloaded")
    assert wait_until(lambda: api.hook_status() == 404, 10)
