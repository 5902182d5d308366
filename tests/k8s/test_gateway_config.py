"""The gateway configuration shipped in every ConfigMap passes `gateway config check`."""

from __future__ import annotations

import base64
import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.k8s import k8s_support as k

# Stand-ins for the Secret values the pods get; shaped like the real thing where that matters.
DUMMY_SECRETS = {
    "WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"k8s-check-dummy-signing-key!").decode(),
    "SLACK_WEBHOOK_URL": "https://hooks.example.invalid/services/k8s-check",
}


def gateway_cli() -> list[str]:
    """The project's `gateway` console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("gateway")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "gateway.cli"]


def _env(config_text: str, home: str) -> dict[str, str]:
    config = yaml.safe_load(config_text)
    referenced = {
        name for _, text in k._walk_strings(config) for name in k.ENV_REFERENCES.findall(text)
    }
    env = {
        key: os.environ[key]
        for key in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
        if key in os.environ
    }
    env["HOME"] = home
    env.update(
        {name: DUMMY_SECRETS.get(name, f"k8s-check-dummy-{name.lower()}") for name in referenced}
    )
    return env


@functools.cache
def config_check(config_text: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="gateway-config-check-") as tmp:
        directory = Path(tmp)
        path = directory / "gateway.yaml"
        path.write_text(config_text)
        return subprocess.run(
            [*gateway_cli(), "config", "check", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(config_text, str(directory)),
            cwd=directory,
            check=False,
        )


@pytest.mark.parametrize("name", k.RENDERS)
def test_configmap_passes_gateway_config_check(name: str) -> None:
    proc = config_check(k.gateway_config_text(k.render(name)))
    assert proc.returncode == 0, f"gateway config check failed:\n{proc.stdout}\n{proc.stderr}"


def test_base_config_file_passes_gateway_config_check() -> None:
    proc = config_check((k.K8S / "base" / "gateway.yaml").read_text())
    assert proc.returncode == 0, f"gateway config check failed:\n{proc.stdout}\n{proc.stderr}"


def test_gateway_config_check_rejects_a_broken_config() -> None:
    # Guards the two tests above: the check must be able to fail.
    broken = (
        (k.K8S / "base" / "gateway.yaml")
        .read_text()
        .replace("plugin: webhook", "plugin: no-such-plugin-k8s-check")
    )
    proc = config_check(broken)
    assert proc.returncode == 1, f"expected exit 1:\n{proc.stdout}\n{proc.stderr}"
