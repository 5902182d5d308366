"""``gateway config check``: exit codes and output, with fake plugins."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import gateway.cli._config
from gateway.cli._config import config_app
from gateway.core import PluginError
from tests.config.fakes import fake_plugins

CASES = Path(__file__).parent / "cases"


@pytest.fixture(autouse=True)
def _fake_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway.cli._config, "discover_plugins", fake_plugins)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_ok_prints_a_one_line_summary(tmp_path: Path) -> None:
    path = _write(tmp_path, "channels:\n  email: {}\n  slack: {}\nsubscriptions:\n"
                            "  - {name: a, channel: email, target: a@example.com}\n")
    result = CliRunner().invoke(config_app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{path}: ok — 1 agent, 2 channels, 1 subscription, 0 templates\n")
    assert result.stderr == ""


def test_check_bad_prints_every_error_on_stderr_and_exits_1(tmp_path: Path) -> None:
    path = _write(tmp_path, "channels:\n  email:\n    options: {prot: 25}\n"
                            "subscriptions:\n  - {name: a, channel: slak, target: '#x'}\n")
    result = CliRunner().invoke(config_app, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:3 channels.email.options.prot: unknown key 'prot'; did you mean 'port'? "
        "expected one of: host, port, tls, username, password, from_addr, from_name",
        f"{path}:5 subscriptions[0].channel: unknown channel 'slak'; known: email, slack, sms, "
        "text, webhook",
    ]


def test_check_a_table_case_file() -> None:
    path = CASES / "bad_unknown_channel.yaml"
    result = CliRunner().invoke(config_app, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stderr == (f"{path}:13 subscriptions[3].channel: unknown channel 'slak'; "
                             "known: email, slack, sms, text, webhook\n")


def test_check_uses_gateway_config_when_no_file_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "")
    monkeypatch.setenv("GATEWAY_CONFIG", str(path))
    result = CliRunner().invoke(config_app, ["check"])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{path}: ok — ")


def test_check_defaults_to_config_gateway_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(config_app, ["check"])
    assert result.exit_code == 1
    assert result.stderr == (
        "config/gateway.yaml: no such file; give the path with --config or GATEWAY_CONFIG\n")


def test_check_reports_a_broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise PluginError("channel plugin 'x' from distribution x 1 failed to import")

    monkeypatch.setattr(gateway.cli._config, "discover_plugins", broken)
    path = _write(tmp_path, "")
    result = CliRunner().invoke(config_app, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"{path}: channel plugin 'x' from distribution x 1 failed to import\n")


def test_check_yaml_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "agents:\n  default: {model: offline\n")
    result = CliRunner().invoke(config_app, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:3 YAML syntax: ")
