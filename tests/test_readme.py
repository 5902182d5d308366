"""The README's usage sections run as written, against a real ``gateway up``.

Every command in a ```sh block of "## Using it" (and its subsections) is run, in order,
against ``gateway up`` started as the README says (on free ports, with its own data and mail
directories and the shipped configuration mailing a free port instead of 2525). A command
that needs something the local setup does not have says so on its line (``# needs ...``, or
a ``# needs ...`` comment line right before it) and is not run; anything else must exit 0.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.local import free_port
from tests.support.process import wait_until

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHIPPED_MAIL_PORT = "port: 2525"
_NEEDS = re.compile(r"(^|\s)#\s*needs\b")
_ENV_SETTING = re.compile(r"^[A-Z_][A-Z0-9_]*=")
GATEWAY = ".venv/bin/gateway"


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    needs: bool

    @property
    def argv(self) -> list[str]:
        """The command's words, after any leading NAME=value environment settings."""
        words = shlex.split(self.text, comments=True)
        while words and _ENV_SETTING.match(words[0]):
            words.pop(0)
        return words

    @property
    def env(self) -> dict[str, str]:
        words = shlex.split(self.text, comments=True)
        settings = [w.split("=", 1) for w in words if _ENV_SETTING.match(w)]
        return {k: v for k, v in settings[: len(words) - len(self.argv)]}

    @property
    def is_server(self) -> bool:
        """``gateway up`` or ``serve``: runs until stopped (this test starts one itself)."""
        return self.argv[:1] == [GATEWAY] and self.argv[1:2] in (["up"], ["serve"])


def usage_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each ```sh block under "## Using it"."""
    lines = text.splitlines()
    start = lines.index("## Using it")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    blocks: list[tuple[int, list[str]]] = []
    i = start
    while i < end:
        if lines[i].strip() == "```sh":
            j = lines.index("```", i + 1)
            blocks.append((i + 2, lines[i + 1:j]))
            i = j
        i += 1
    return blocks


def commands(text: str) -> list[Command]:
    found: list[Command] = []
    for first, block in usage_blocks(text):
        pending: list[str] = []
        needs_next = False
        at = first
        for n, raw in enumerate(block, first):
            if not pending:
                at = n
                if raw.strip().startswith("#") or not raw.strip():
                    needs_next = needs_next or bool(_NEEDS.search(raw))
                    continue
            pending.append(raw)
            joined = "\n".join(pending)
            try:
                shlex.split(joined, comments=True)
            except ValueError:  # an open quote: the command goes on
                continue
            if joined.rstrip().endswith("\\"):
                continue
            found.append(Command(at, joined, needs_next or bool(_NEEDS.search(joined))))
            pending, needs_next = [], False
        assert not pending, f"README.md:{at}: a command is not finished in its block"
    return found


def test_the_readme_commands_are_found_and_marked() -> None:
    """The parser itself: what runs and what says what it needs."""
    found = commands(README.read_text())
    texts = [c.text for c in found]
    assert any(t.startswith(".venv/bin/gateway up") for t in texts)
    assert any(" submit " in t and "--wait" in t for t in texts)
    slack = [c for c in found if "slack:" in c.text]
    assert slack and all(c.needs for c in slack), "a Slack line must say what it needs"
    for c in found:
        if "$KEY" in c.text or "example.com/hooks" in c.text or "restate:9070" in c.text:
            assert c.needs, f"README.md:{c.line}: {c.text!r} needs something: say so"


class Up:
    """``gateway up`` as the README starts it, on free ports."""

    def __init__(self, argv: list[str], tmp: Path, env: dict[str, str]) -> None:
        self.ports = {name: free_port() for name in ("ingress", "admin", "node", "service",
                                                       "api")}
        config = tmp / "gateway.yaml"
        shipped = (ROOT / "config" / "gateway.yaml").read_text()
        assert shipped.count(SHIPPED_MAIL_PORT) == 1, "the shipped config mails localhost:2525"
        self.mail_port = free_port()
        config.write_text(shipped.replace(SHIPPED_MAIL_PORT, f"port: {self.mail_port}"))
        self.lines: list[str] = []
        self.ready = threading.Event()
        flags = [arg for name, port in self.ports.items() for arg in (f"--{name}-port", str(port))]
        self.proc = subprocess.Popen(
            [*argv, *flags, "--config", str(config), "--data-dir", str(tmp / "restate")],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "press Ctrl-C" in line:
                self.ready.set()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def _local(text: str, up: Up) -> str:
    """The README's default ports, mapped to the ones this test's ``gateway up`` listens on."""
    for name, default in (("ingress", 8080), ("api", 8000), ("admin", 9070)):
        text = text.replace(f"localhost:{default}", f"127.0.0.1:{up.ports[name]}")
    return text


def _mails(mail_dir: Path) -> list[str]:
    return [p.read_text(errors="replace") for p in sorted(mail_dir.glob("*.eml"))]


@pytest.mark.slow
def test_every_usage_command_of_the_readme_runs_as_written(tmp_path: Path) -> None:
    found = commands(README.read_text())
    servers = [c for c in found if c.argv == [GATEWAY, "up"] and not c.env and not c.needs]
    assert len(servers) == 1, [c.text for c in servers]
    mail_dir = tmp_path / "mail"
    env = {**os.environ, "GATEWAY_MAIL_DIR": str(mail_dir), "NO_COLOR": "1"}
    for name in ("GATEWAY_CONFIG", "GATEWAY_API_URL", "GATEWAY_API_KEY",
                 "GATEWAY_RESTATE_ADMIN_URL", "GATEWAY_RESTATE_INGRESS_URL", "GATEWAY_MODEL"):
        env.pop(name, None)
    up = Up(servers[0].argv, tmp_path, env)
    ran: list[str] = []
    try:
        assert up.ready.wait(120), "\n".join(up.lines)
        assert f"localhost:{up.mail_port}" in "\n".join(up.lines), up.lines
        env["GATEWAY_RESTATE_INGRESS_URL"] = f"http://127.0.0.1:{up.ports['ingress']}"
        for c in found:
            if c.needs or c.is_server:  # another server (a real model, a cluster) or this one
                continue
            argv = c.argv
            assert argv[0] in (GATEWAY, "curl"), (
                f"README.md:{c.line}: {argv[0]!r} is neither the gateway nor curl: mark what "
                "the line needs with '# needs ...', or teach this test to run it")
            if argv[0] == "curl":  # an HTTP error is a failure, not a page of output
                argv = ["curl", "--fail-with-body", "--silent", "--show-error",
                        "--max-time", "60", *argv[1:]]
            argv = [_local(a, up) for a in argv]
            r = subprocess.run(argv, cwd=ROOT, env={**env, **c.env}, capture_output=True, text=True,
                               timeout=150)
            assert r.returncode == 0, (f"README.md:{c.line}: {c.text}\nexit {r.returncode}\n"
                                       f"{r.stdout}\n{r.stderr}")
            ran.append(" ".join(c.argv[:3]))
            if argv[:3] == [GATEWAY, "submit", "Write a poem"] and "--wait" in argv:
                mails = _mails(mail_dir)
                assert any("To: me@example.com" in m and "msg-123" in m for m in mails), mails
        # the ingress walkthrough's subscriber is mailed too, in the local mailbox
        assert wait_until(lambda: any("msg-200" in m for m in _mails(mail_dir)), 60), \
            _mails(mail_dir)
    finally:
        code = up.stop()
    assert code == 0, "\n".join(up.lines)
    assert any(r.startswith(f"{GATEWAY} submit") for r in ran)
    assert any(r.startswith("curl") for r in ran)
