"""The configurations shipped in config/ pass the check with the real, installed plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.channels import ChannelPlugin, Renderer, discover_plugins
from gateway.config import config_warnings, load_config
from gateway.core import Task
from tests.config.fakes import fake_plugins

CONFIG = Path(__file__).resolve().parents[2] / "config"
#: made-up values for the ${ENV} references of the team example
TEAM_ENV = {
    "SMTP_PASSWORD": "example-smtp-password",
    "SLACK_BOT_TOKEN": "xoxb-0000000000-0000000000-exampleexampleexample",
    "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
    "TWILIO_AUTH_TOKEN": "00000000000000000000000000000000",
    "AUDIT_WEBHOOK_SECRET": "whsec_ZXhhbXBsZS1vbmx5LWF1ZGl0LXdlYmhvb2sta2V5",
    "OPENAI_API_KEY": "sk-example-only-openai-key",
}
SHIPPED = [("gateway.yaml", {}), ("examples/team.yaml", TEAM_ENV)]


def _check(name: str, env: dict[str, str], plugins: dict[str, ChannelPlugin]) -> None:
    config = load_config(CONFIG / name, plugins=plugins, env=env)
    assert config_warnings(config) == []
    Renderer.from_config(config)
    task = Task(task_id="t", prompt="p", agent="default", labels={"team": "demo"},
                submitted_at=0.0)
    config.route(task)


@pytest.mark.parametrize(("name", "env"), SHIPPED, ids=[n for n, _ in SHIPPED])
def test_shipped_configuration_with_installed_plugins(name: str, env: dict[str, str]) -> None:
    _check(name, env, discover_plugins())


@pytest.mark.parametrize(("name", "env"), SHIPPED, ids=[n for n, _ in SHIPPED])
def test_shipped_configuration_with_fake_plugins(name: str, env: dict[str, str]) -> None:
    _check(name, env, fake_plugins())


def test_demo_routes_team_demo_tasks_to_the_demo_mailbox() -> None:
    config = load_config(CONFIG / "gateway.yaml", plugins=fake_plugins(), env={})
    task = Task(task_id="t", prompt="p", agent="default", labels={"team": "demo"},
                submitted_at=0.0)
    [sub] = config.route(task)
    assert (sub.channel, sub.target, sub.source) == ("email", "demo-team@example.com",
                                                     "demo-team")
    assert sub.outcomes == ["succeeded", "failed", "timed_out"]
    assert config.route(task.model_copy(update={"labels": {}})) == []


def test_team_example_routes_ml_tasks_to_slack_with_sms_then_email_fallback() -> None:
    config = load_config(CONFIG / "examples/team.yaml", plugins=fake_plugins(), env=TEAM_ENV)
    task = Task(task_id="t", prompt="p", agent="researcher",
                labels={"team": "ml", "env": "prod"}, submitted_at=0.0)
    routed = {s.source: s for s in config.route(task)}
    assert set(routed) == {"ml-team", "research-oncall", "audit"}
    ml = routed["ml-team"]
    assert (ml.channel, ml.target, ml.template) == ("slack", "#ml-alerts", "ml-brief")
    assert [(t.channel, t.target) for t in ml.fallback] == [
        ("sms", "+15550100001"), ("email", "ml-team@example.com")]
    oncall = routed["research-oncall"]
    assert oncall.outcomes == ["failed", "timed_out"]
    assert [(t.channel, t.target) for t in oncall.fallback] == [("email", "oncall@example.com")]
    assert set(config.secret_values()) == set(TEAM_ENV.values())
