"""``options.timeout``, kept for older files and API callers: it lowers the attempt timeout
(``retry.attempt_timeout``, the one time limit of an attempt) and is no plugin's option;
``gateway config check`` says what to write instead. With the installed plugins."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.channels import Channels, check_untrusted, discover_plugins
from gateway.cli._config import config_app
from gateway.config import load_config
from gateway.core import SubscriptionError, Target

CONFIG = """\
channels:
  audit:
    plugin: webhook
    options: {allow_unsigned: true, timeout: 5}
    retry: {attempt_timeout: 20}
  lenient:
    plugin: webhook
    options: {allow_unsigned: true, timeout: 50}
  plain:
    plugin: webhook
    options: {allow_unsigned: true}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def channels(config_path: Path) -> Channels:
    plugins = discover_plugins()
    config = load_config(config_path, plugins=plugins, env={})
    return Channels.from_plugins(plugins, config.channel_instances())


def test_check_warns_in_one_line_what_to_write_instead(config_path: Path) -> None:
    result = CliRunner().invoke(config_app, ["check", str(config_path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"{config_path}: warning: channels.{name}.options.timeout: write retry: "
        f"{{attempt_timeout: {value}}} instead (the one time limit of an attempt, which this "
        "option only lowers; plugins have no timeout option of their own)"
        for name, value in (("audit", 5), ("lenient", 50))
    ]
    assert result.stdout == f"{config_path}: ok — 1 agent, 3 channels, 0 subscriptions, " \
                            "0 templates\n"


def test_a_channel_timeout_lowers_its_attempt_timeout_never_raises_it(
    channels: Channels,
) -> None:
    audit, lenient, plain = (channels.get(n) for n in ("audit", "lenient", "plain"))
    assert audit.attempt_timeout({}) == 5  # below its retry.attempt_timeout of 20
    assert lenient.attempt_timeout({}) == 30  # the default attempt timeout stays
    assert plain.attempt_timeout({}) == 30
    # a subscription's own timeout lowers it for that subscription only
    assert audit.attempt_timeout({"timeout": 2}) == 2
    assert audit.attempt_timeout({"timeout": 9}) == 5
    # the plugin never sees it: its options have no timeout
    assert "timeout" not in type(audit.effective_options({"timeout": 2})).model_fields


@pytest.mark.parametrize(
    ("channel", "options", "says"),
    [
        ("plain", {"timeout": 0}, "channel 'plain': options.timeout: Input should be greater "
                                  "than 0"),
        ("plain", {"timeout": 301}, "channel 'plain': options.timeout: at most 300 seconds"),
        ("plain", {"timeout": "soon"}, "channel 'plain': options.timeout: Input should be a "
                                       "valid number"),
        ("email", {"timeout": 3}, "channel 'email': options timeout can only be set in the "
                                  "YAML file"),
    ],
)
def test_a_subscriber_timeout_is_bounded_and_only_where_the_plugin_allows(
    channels: Channels, channel: str, options: dict[str, object], says: str
) -> None:
    target = Target(channel=channel, target="https://hooks.example.com/x" if channel == "plain"
                    else "jane@example.com", options=options)
    with pytest.raises(SubscriptionError) as info:
        check_untrusted(channels, target, None)
    assert str(info.value).startswith(says), info.value


def test_a_webhook_subscriber_may_lower_its_own_attempt_timeout(channels: Channels) -> None:
    target = Target(channel="plain", target="https://hooks.example.com/x",
                    options={"timeout": 3})
    assert check_untrusted(channels, target, None) == "https://hooks.example.com/x"
    assert channels.get("plain").attempt_timeout(target.options) == 3
