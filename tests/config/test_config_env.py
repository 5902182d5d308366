"""${ENV} references, secrets kept out of errors and reprs, loading files, finding the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

import gateway.config.check
from gateway.channels import ChannelPlugin
from gateway.config import (
    DEFAULT_CONFIG_PATH,
    GatewayConfig,
    load_config,
    parse_config,
    resolve_config_path,
)
from gateway.config.schema import Section
from gateway.core import ConfigError, Task, TaskInputError

TOKEN = "xoxb-1234-super-secret-token"
PASSWORD = "hunter2-very-secret"
HOOK = "https://hooks.example.com/T000/B000/secretpath"

SECRET_CONFIG = """\
channels:
  slack:
    options: {bot_token: "${SLACK_TOKEN}"}
  email:
    options:
      host: ${SMTP_HOST:-smtp.example.com}
      password: ${SMTP_PASSWORD}
      port: ${SMTP_PORT}
subscriptions:
  - name: hook
    notify: ["webhook:${HOOK_URL}"]
    targets: {slack: "#ml"}
"""
ENV = {"SLACK_TOKEN": TOKEN, "SMTP_PASSWORD": PASSWORD, "HOOK_URL": HOOK, "SMTP_PORT": "2525"}


def test_references_are_resolved(plugins: dict[str, ChannelPlugin]) -> None:
    config = parse_config(SECRET_CONFIG, plugins=plugins, env=ENV)
    assert config.channels["slack"].options == {"bot_token": TOKEN}
    assert config.channels["email"].options == {
        "host": "smtp.example.com", "password": PASSWORD, "port": "2525"}
    assert config.subscriptions[0].notify[0].target == HOOK
    assert config.channel_instances()["email"] == (
        "email", {"host": "smtp.example.com", "password": PASSWORD, "port": "2525"}, None)


def test_default_is_used_only_when_unset_or_empty(plugins: dict[str, ChannelPlugin]) -> None:
    text = "channels:\n  email:\n    options: {host: '${H:-fallback.example.com}'}\n"
    for env, host in [({}, "fallback.example.com"), ({"H": ""}, "fallback.example.com"),
                      ({"H": "set.example.com"}, "set.example.com")]:
        config = parse_config(text, plugins=plugins, env=env)
        assert config.channels["email"].options["host"] == host


def test_double_dollar_is_a_literal(plugins: dict[str, ChannelPlugin]) -> None:
    text = "templates:\n  t:\n    text: 'costs $${PRICE} and $5'\n"
    config = parse_config(text, plugins=plugins, env={})
    assert config.templates["t"].text == "costs ${PRICE} and $5"


def test_secrets_never_appear_in_repr_or_str(plugins: dict[str, ChannelPlugin]) -> None:
    config = parse_config(SECRET_CONFIG, plugins=plugins, env=ENV)
    shown = [repr(config), str(config), repr(config.channels["slack"]),
             repr(config.channels["email"]), str(config.channels["email"]),
             repr(config.subscriptions[0]), repr(config.subscriptions[0].notify[0])]
    for text in shown:
        for secret in (TOKEN, PASSWORD, HOOK):
            assert secret not in text
    assert "bot_token': '[redacted]'" in repr(config.channels["slack"])


def test_secret_values_are_listed_for_redaction(plugins: dict[str, ChannelPlugin]) -> None:
    config = parse_config(SECRET_CONFIG, plugins=plugins, env=ENV)
    assert set(config.secret_values()) == {TOKEN, PASSWORD, HOOK, "2525"}
    assert config.redact(f"failed with {TOKEN} at {HOOK}") == "failed with [redacted] at [redacted]"


def test_short_values_are_not_treated_as_secrets(plugins: dict[str, ChannelPlugin]) -> None:
    config = parse_config("channels:\n  email:\n    options: {port: '${P}'}\n",
                          plugins=plugins, env={"P": "25"})
    assert config.secret_values() == ()


def test_secrets_never_appear_in_errors(plugins: dict[str, ChannelPlugin]) -> None:
    text = SECRET_CONFIG + "  - name: leak\n    notify: ['email:${SMTP_PASSWORD}']\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins, env=ENV)
    assert caught.value.errors == [
        "<config>:14 subscriptions[1].notify[0].target: '[redacted]' is not one email address "
        "(like jane@example.com)",
    ]
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value)


def test_missing_variables_are_each_named_with_their_place(
    plugins: dict[str, ChannelPlugin]
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(SECRET_CONFIG, plugins=plugins, env={"SMTP_PORT": "25"}, source="team.yaml")
    assert caught.value.errors == [
        "team.yaml:3 channels.slack.options.bot_token: environment variable SLACK_TOKEN is "
        "not set",
        "team.yaml:7 channels.email.options.password: environment variable SMTP_PASSWORD is "
        "not set",
        "team.yaml:11 subscriptions[0].notify[0]: environment variable HOOK_URL is not set",
    ]


def test_process_environment_is_the_default(
    plugins: dict[str, ChannelPlugin], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_HOST", "from-process.example.com")
    text = "channels:\n  email:\n    options: {host: '${GATEWAY_TEST_HOST}'}\n"
    config = parse_config(text, plugins=plugins)
    assert config.channels["email"].options["host"] == "from-process.example.com"


def test_load_config_names_the_file(tmp_path: Path, plugins: dict[str, ChannelPlugin]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("channels:\n  emial: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, plugins=plugins, env={})
    assert caught.value.errors == [
        f"{path}:2 channels.emial: unknown plugin 'emial'; installed: email, slack, sms, text, "
        "webhook; set plugin: to one of them"
    ]


def test_load_config_missing_and_unreadable_files(
    tmp_path: Path, plugins: dict[str, ChannelPlugin]
) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, plugins=plugins)
    assert caught.value.errors == [
        f"{missing}: no such file; give the path with --config or GATEWAY_CONFIG"]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"agents: \xff\n")
    with pytest.raises(ConfigError, match=r"binary.yaml: not UTF-8 text \(byte 8\)"):
        load_config(binary, plugins=plugins)


def test_loaded_config_knows_its_source(tmp_path: Path, plugins: dict[str, ChannelPlugin]) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("", encoding="utf-8")
    config = load_config(path, plugins=plugins)
    assert config.source == str(path)
    assert config.agent("default").model == "offline"
    with pytest.raises(TaskInputError, match="unknown agent 'nope'; known: default"):
        config.agent("nope")


@pytest.mark.parametrize(("cli", "env", "expected"), [
    ("mine.yaml", {"GATEWAY_CONFIG": "env.yaml"}, Path("mine.yaml")),
    (None, {"GATEWAY_CONFIG": "env.yaml"}, Path("env.yaml")),
    (None, {"GATEWAY_CONFIG": "  "}, DEFAULT_CONFIG_PATH),
    (None, {}, DEFAULT_CONFIG_PATH),
    (Path("p.yaml"), {}, Path("p.yaml")),
])
def test_resolve_config_path(cli: str | Path | None, env: dict[str, str], expected: Path) -> None:
    assert resolve_config_path(cli, env) == expected


def test_default_config_path() -> None:
    assert Path("config/gateway.yaml") == DEFAULT_CONFIG_PATH


def test_config_helpers(plugins: dict[str, ChannelPlugin]) -> None:
    config = parse_config(
        "channels:\n"
        "  slack: {fallback: [email], template: t, retry: {max_attempts: 2}}\n"
        "  ops: {plugin: email, options: {host: ops.example.com}}\n"
        "subscriptions:\n"
        "  - {name: all, channel: ops, target: ops@example.com}\n"
        "templates:\n  t: {text: hi}\n",
        plugins=plugins, env={},
    )
    assert config.channel_fallbacks() == {"slack": ["email"]}
    assert config.channel_templates() == {"slack": "t"}
    instances = config.channel_instances()
    assert instances["ops"] == ("email", {"host": "ops.example.com"}, None)
    assert instances["slack"][2] is not None and instances["slack"][2].max_attempts == 2
    [sub] = config.route(Task(task_id="t", prompt="p", agent="default", submitted_at=0.0))
    assert (sub.channel, sub.target, sub.source) == ("ops", "ops@example.com", "all")
    assert config.summary() == "1 agent, 2 channels, 1 subscription, 1 template"
    assert GatewayConfig().summary() == "1 agent, 0 channels, 0 subscriptions, 0 templates"


class _ApiConfig(Section):
    listen: str = "127.0.0.1:8000"
    signing_secret: str | None = None


class _ExtendedConfig(GatewayConfig):
    api: _ApiConfig = Field(default_factory=_ApiConfig)


def test_a_new_section_is_one_more_field(
    plugins: dict[str, ChannelPlugin], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway.config.check, "GatewayConfig", _ExtendedConfig)
    config = parse_config("api: {listen: '0.0.0.0:80', signing_secret: '${API_SECRET}'}\n",
                          plugins=plugins, env={"API_SECRET": "api-secret-value"})
    assert isinstance(config, _ExtendedConfig)
    assert config.api.listen == "0.0.0.0:80"
    assert "api-secret-value" not in repr(config) + repr(config.api)
    with pytest.raises(ConfigError) as caught:
        parse_config("\napi: {lisen: x}\n", plugins=plugins, env={})
    assert caught.value.errors == [
        "<config>:2 api.lisen: unknown key 'lisen'; did you mean 'listen'? expected one of: "
        "listen, signing_secret"]
