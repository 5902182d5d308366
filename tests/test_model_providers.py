"""Real model providers: an agent configured with ``model: openai:gpt-4o-mini`` and a
``base_url`` talks to a loopback server that speaks OpenAI's chat-completions wire format,
through the real ``openai`` client, pydantic-ai and the real restate-server (both engine
modes); configuration errors name an unknown provider or a missing key."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.channels import ChannelPlugin, discover_plugins
from gateway.config import load_config, parse_config
from gateway.core import ConfigError, DeliveryState, Subscription, TaskRequest, TaskState
from gateway.durable import (
    AgentSpec,
    GatewayClient,
    build_agent,
    current_runtime,
    install_runtime,
    runtime_for,
)
from gateway.local import LocalEngine, WebhookReceiver
from tests.config.fakes import fake_plugins
from tests.conftest import TEST_ENV
from tests.support.openai_server import OpenAIServer, answer_for
from tests.support.service import register, running_endpoint

TEST_KEY = "sk-test-loopback-0123456789abcdef"
INSTRUCTIONS = "You answer for the provider tests."

CONFIG = """\
agents:
  default: {model: offline}
  llm:
    model: openai:gpt-4o-mini
    base_url: BASE_URL
    api_key: ${TEST_KEY}
    instructions: INSTRUCTIONS
    temperature: 0.2
    max_tokens: 64
    max_attempts: 3
  impatient:
    model: openai:gpt-4o-mini
    base_url: BASE_URL
    api_key: ${TEST_KEY}
    request_timeout: 1s
    max_attempts: 2
channels:
  webhook:
    plugin: webhook
    options: {secret: "${TEST_WEBHOOK_SECRET}", allow_private_targets: true}
    retry: {max_attempts: 3, initial_interval: 0.2, max_interval: 1, attempt_timeout: 10}
"""


@pytest.fixture
def plugins() -> dict[str, ChannelPlugin]:
    return fake_plugins()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llm_gateway(gateway: str, restate_server: LocalEngine, openai_server: OpenAIServer,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway endpoint whose ``llm`` agent is the loopback OpenAI server's model, loaded
    through the real configuration loader and registered in place of the shared one (which
    is registered again afterwards). Its cleanup closes the model's connection pool."""
    path = tmp_path_factory.mktemp("providers") / "gateway.yaml"
    path.write_text(CONFIG.replace("BASE_URL", openai_server.base_url)
                    .replace("INSTRUCTIONS", INSTRUCTIONS))
    plugins = discover_plugins()
    config = load_config(path, plugins=plugins, env={**TEST_ENV, "TEST_KEY": TEST_KEY})
    before = current_runtime()
    runtime = runtime_for(config, plugins)
    with running_endpoint(runtime, restate_server) as url:
        try:
            yield url
        finally:
            install_runtime(before)
            register(restate_server, gateway)


@pytest.mark.restate
def test_the_task_output_is_the_models_answer_from_one_request(
    llm_gateway: str, client: GatewayClient, openai_server: OpenAIServer
) -> None:
    task_id = new_id("llm")
    prompt = f"Summarise the loopback test {task_id}"
    client.submit(task_id, TaskRequest(prompt=prompt, agent="llm"))
    status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.SUCCEEDED, status.error
    assert status.output == answer_for(prompt)
    # one model call, one request: replays (always-replay mode) read the journal instead
    assert openai_server.count(prompt) == 1
    [request] = openai_server.requests[prompt]
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["temperature"] == 0.2
    assert request.body.get("max_tokens", request.body.get("max_completion_tokens")) == 64
    system = [m["content"] for m in request.body["messages"] if m["role"] == "system"]
    assert system == [INSTRUCTIONS]


@pytest.mark.restate
def test_a_rate_limit_and_a_server_error_are_retried_then_the_answer_is_delivered(
    llm_gateway: str, client: GatewayClient, openai_server: OpenAIServer,
    webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("llm-429")
    prompt = f"[fail 429 503] Try again later {task_id}"
    client.submit(task_id, TaskRequest(prompt=prompt, agent="llm", subscriptions=[
        Subscription.parse(f"webhook:{webhook_receiver.url}/hooks/{task_id}")]))
    status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.SUCCEEDED, status.error
    assert status.output == answer_for(prompt)
    assert [d.state for d in status.deliveries] == [DeliveryState.DELIVERED]
    first, second, third = openai_server.requests[prompt]  # exactly three: 429, 503, answer
    assert second.received_at - first.received_at >= 0.9  # the 429's Retry-After: 1
    assert third.received_at > second.received_at
    hooks = [h for h in webhook_receiver.wait_for(1, 10) if h.path == f"/hooks/{task_id}"]
    assert [h.json()["output"] for h in hooks] == [answer_for(prompt)]


@pytest.mark.restate
def test_a_refused_key_fails_the_task_at_once_and_failure_subscribers_hear_it(
    llm_gateway: str, client: GatewayClient, openai_server: OpenAIServer,
    webhook_receiver: WebhookReceiver
) -> None:
    task_id = new_id("llm-401")
    prompt = f"[always 401] Use the wrong key {task_id}"
    hook = f"{webhook_receiver.url}/hooks/{task_id}"
    client.submit(task_id, TaskRequest(prompt=prompt, agent="llm", subscriptions=[
        Subscription(channel="webhook", target=hook, outcomes=["failed"])]))
    status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.FAILED
    assert status.error is not None
    assert "HTTP 401" in status.error and "Incorrect API key provided" in status.error
    assert "'llm'" in status.error and "gpt-4o-mini" in status.error
    assert TEST_KEY not in status.error
    assert openai_server.count(prompt) == 1  # refused: never retried
    assert [d.state for d in status.deliveries] == [DeliveryState.DELIVERED]
    webhook_receiver.wait_for(1, 10)
    [sent] = [h for h in webhook_receiver.items() if h.path == f"/hooks/{task_id}"]
    assert sent.json()["type"] == "task.failed"
    assert "HTTP 401" in sent.json()["error"]
    assert TEST_KEY.encode() not in sent.body


@pytest.mark.restate
def test_a_model_that_keeps_failing_fails_the_task_after_its_attempts(
    llm_gateway: str, client: GatewayClient, openai_server: OpenAIServer
) -> None:
    task_id = new_id("llm-503")
    prompt = f"[always 503] Down for good {task_id}"
    client.submit(task_id, TaskRequest(prompt=prompt, agent="llm"))
    status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.FAILED
    assert status.error is not None
    assert "still failing after 3 attempts" in status.error and "HTTP 503" in status.error
    assert openai_server.count(prompt) == 3  # max_attempts: 3, then no more


@pytest.mark.restate
def test_a_request_that_times_out_is_retried_in_the_same_step(
    llm_gateway: str, client: GatewayClient, openai_server: OpenAIServer
) -> None:
    task_id = new_id("llm-slow")
    prompt = f"[slow 4] Take your time {task_id}"
    client.submit(task_id, TaskRequest(prompt=prompt, agent="impatient"))
    status = client.wait(task_id, timeout=60)
    assert status.state is TaskState.SUCCEEDED, status.error
    assert status.output == answer_for(prompt)
    first, second = openai_server.requests[prompt]  # cut short after 1s, then answered
    assert 0.9 <= second.received_at - first.received_at < 4


# --- configuration -------------------------------------------------------------------------


def _errors(text: str, plugins: dict[str, ChannelPlugin],
            env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins, source="gateway.yaml", env=env or {})
    return caught.value.errors


def test_config_check_names_an_unknown_provider_and_lists_the_known_ones(
    plugins: dict[str, ChannelPlugin]
) -> None:
    text = "agents:\n  researcher:\n    model: openia:gpt-4o\n"
    assert _errors(text, plugins) == [
        "gateway.yaml:3 agents.researcher.model: unknown model provider 'openia' in "
        "'openia:gpt-4o'; known: offline, anthropic, bedrock, google, groq, mistral, openai, "
        "openai-chat, openai-responses"
    ]


def test_config_check_names_a_missing_key(plugins: dict[str, ChannelPlugin]) -> None:
    text = ("agents:\n  default: {model: offline}\n  researcher:\n    model: openai:gpt-4o\n"
            "  writer:\n    model: anthropic:claude-sonnet-4-5\n")
    assert _errors(text, plugins) == [
        "gateway.yaml:3 agents.researcher: model 'openai:gpt-4o' needs OPENAI_API_KEY or "
        "api_key",
        "gateway.yaml:5 agents.writer: model 'anthropic:claude-sonnet-4-5' needs "
        "ANTHROPIC_API_KEY or api_key",
    ]
    # the provider's variable, an api_key, or a local OpenAI-compatible server will do
    parse_config(text, plugins=plugins, env={"OPENAI_API_KEY": "sk-x" * 4,
                                             "ANTHROPIC_API_KEY": "sk-ant" * 4})
    local = "agents:\n  local: {model: 'openai:llama3.2', base_url: 'http://localhost:11434/v1'}\n"
    assert "local" in parse_config(local, plugins=plugins, env={}).agents


def test_an_api_key_from_the_environment_is_a_secret(plugins: dict[str, ChannelPlugin]) -> None:
    key = "sk-proj-secret-0123456789"
    text = "agents:\n  llm: {model: 'openai:gpt-4o-mini', api_key: '${MY_KEY}'}\n"
    config = parse_config(text, plugins=plugins, env={"MY_KEY": key})
    assert key in config.secret_values()
    assert key not in repr(config) and key not in repr(config.agents["llm"])
    assert config.redact(f"refused {key}") == "refused [redacted]"
    assert _errors(text, plugins) == [
        "gateway.yaml:2 agents.llm.api_key: environment variable MY_KEY is not set"]
    bad = "agents:\n  llm: {model: 'openai:gpt-4o-mini', base_url: 'localhost:11434'}\n"
    assert _errors(bad, plugins, {"OPENAI_API_KEY": key}) == [
        "gateway.yaml:2 agents.llm.base_url: must be an http:// or https:// URL (e.g. "
        "http://localhost:11434/v1 for Ollama)"]


def test_gateway_model_with_a_missing_key_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MODEL", "openai:gpt-4o-mini")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"^agents\.default: model 'openai:gpt-4o-mini' needs "
                       r"OPENAI_API_KEY or api_key$"):
        build_agent(AgentSpec("default"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    assert build_agent(AgentSpec("default")).model_name == "openai:gpt-4o-mini"


def test_the_cli_config_check_reports_the_provider_errors(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("agents:\n  researcher: {model: 'openai:gpt-4o'}\n"
                    "  other: {model: 'ollama2:llama3'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    done = subprocess.run([sys.executable, "-m", "gateway", "config", "check", str(path)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert f"{path}:2 agents.researcher: model 'openai:gpt-4o' needs OPENAI_API_KEY or " \
           "api_key" in out
    assert f"{path}:3 agents.other.model: unknown model provider 'ollama2'" in out


def test_only_the_configured_provider_is_imported() -> None:
    """The gateway's start does not import provider SDKs it is not configured with."""
    code = (
        "import sys\n"
        "from gateway.durable.agent import AgentSpec, build_agent\n"
        "build_agent(AgentSpec('default'))\n"
        "build_agent(AgentSpec('llm', 'openai:gpt-4o-mini', api_key='sk-unused-key'))\n"
        "print(sorted(m for m in ('openai', 'anthropic', 'google.genai', 'groq', 'mistralai',"
        " 'boto3') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "GATEWAY_MODEL": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['openai']"


# --- which errors are retried ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "retried"), [
    (429, True), (500, True), (502, True), (503, True), (529, True), (408, True),
    (400, False), (401, False), (403, False), (404, False), (422, False),
])
def test_which_provider_statuses_are_retried(status: int, retried: bool) -> None:
    from pydantic_ai.exceptions import ModelHTTPError

    from gateway.durable._model_retry import is_transient

    assert is_transient(ModelHTTPError(status, "gpt-4o-mini", {"message": "x"})) is retried


def test_a_provider_message_is_one_line_without_the_key() -> None:
    from pydantic_ai.exceptions import ModelHTTPError

    from gateway.durable._model_retry import provider_message

    body = {"error": {"message": f"Incorrect API key provided:\n {TEST_KEY}.", "code": "x"}}
    said = provider_message(ModelHTTPError(401, "gpt-4o-mini", body), [TEST_KEY])
    assert said == "HTTP 401: Incorrect API key provided: [redacted]."
