"""The local engine's server settings that the benchmarks measured (see bench/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.local.engine import INVOCATIONS_LIMIT_ENV, LocalEngine


def _engine(tmp_path: Path, **env: str) -> LocalEngine:
    return LocalEngine(base_dir=tmp_path, ingress_port=1, admin_port=2, node_port=3, env=env)


def test_the_server_admits_16_invocations_per_partition_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INVOCATIONS_LIMIT_ENV, raising=False)
    assert _engine(tmp_path).server_env()[INVOCATIONS_LIMIT_ENV] == "16"


def test_the_environment_and_the_caller_override_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INVOCATIONS_LIMIT_ENV, "64")
    assert _engine(tmp_path).server_env()[INVOCATIONS_LIMIT_ENV] == "64"
    chosen = _engine(tmp_path, **{INVOCATIONS_LIMIT_ENV: "8"})
    assert chosen.server_env()[INVOCATIONS_LIMIT_ENV] == "8"
