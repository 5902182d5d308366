"""The agent: a pydantic-ai agent made durable with Restate.

The default model is offline and deterministic (no LLM, no key, no network) and says so in
its answers. An agent of the configuration may name a real model (``openai:gpt-4o-mini``,
``anthropic:...``, an OpenAI-compatible server with ``base_url``; see
gateway.config.model_providers), and ``GATEWAY_MODEL`` switches the default agent to one. Real
models' errors are retried or fail the task as gateway.durable._model_retry says.

Offline model strings, for demos and tests:

* ``offline`` - answers with a short, clearly labelled echo of the task;
* ``offline:fail`` - every model call fails (shows how subscribers hear of failures);
* ``offline:sleep=SECONDS`` - answers after a pause (shows deadlines and late results).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models import Model, StreamedResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from restate import RunOptions, TerminalError
from restate.extensions import current_context
from restate.serde import Serde

from gateway.config import PROVIDERS, build_model, key_problem, provider_problem
from gateway.core import ConfigError, TaskInputError
from gateway.durable._model_retry import RetryingModel
from gateway.durable.retry import AGENT_STEP_RETRY, step_options
from gateway.observability.trace import agent_instrumentation

__all__ = ["AgentRunner", "AgentSpec", "OfflineModelError", "build_agent", "offline_model"]

OFFLINE_LABEL = "[offline model: no LLM was called]"


class OfflineModelError(RuntimeError):
    """The offline model was asked to fail (``offline:fail``)."""


def _last_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        for part in getattr(message, "parts", []):
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                return part.content
    return ""


def offline_model(spec: str = "offline") -> Model:
    """The built-in deterministic model named by ``spec`` (see the module docstring)."""
    mode, _, arg = spec.partition(":")
    if mode != "offline":
        raise TaskInputError(f"{spec!r} is not an offline model string")
    delay = 0.0
    fail = False
    if arg == "fail":
        fail = True
    elif arg.startswith("sleep="):
        try:
            delay = float(arg.removeprefix("sleep="))
        except ValueError:
            raise TaskInputError(f"model {spec!r}: sleep= needs a number of seconds") from None
    elif arg:
        raise TaskInputError(
            f"model {spec!r}: unknown offline mode {arg!r}; use offline, offline:fail or "
            "offline:sleep=SECONDS"
        )

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if delay:
            await asyncio.sleep(delay)
        if fail:
            raise OfflineModelError("the offline model was configured to fail (offline:fail)")
        prompt = " ".join(_last_prompt(messages).split())
        brief = prompt if len(prompt) <= 200 else prompt[:197] + "..."
        text = f"{OFFLINE_LABEL} Task received and completed: {brief}"
        return ModelResponse(parts=[TextPart(text)], model_name=spec)

    return FunctionModel(answer, model_name=spec)


@dataclass(frozen=True)
class AgentSpec:
    """What the configuration says about one agent."""

    name: str
    model: str = "offline"
    instructions: str = "Complete the task and report the result briefly."
    deadline: float | None = None
    max_attempts: int = 3
    #: hard limit of one run, in seconds from submission; enforced on every model call
    timeout: float | None = None
    #: an OpenAI-compatible server or a provider's proxy
    base_url: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    #: seconds one model request may take (each attempt), then it is retried; enforced by
    #: RetryingModel inside the journaled step (pydantic-ai's own request_timeout setting
    #: would wrap the step itself and cancel it)
    request_timeout: float | None = None

    def model_settings(self) -> ModelSettings:
        """The model settings of this agent; the provider SDK's own retries are off: the
        gateway retries (see gateway.durable._model_retry)."""
        settings = ModelSettings(max_retries=0)
        if self.temperature is not None:
            settings["temperature"] = self.temperature
        if self.max_tokens is not None:
            settings["max_tokens"] = self.max_tokens
        return settings


#: when the current run must have finished (epoch seconds), set by AgentRunner.run
_run_deadline: ContextVar[float | None] = ContextVar("gateway_run_deadline", default=None)


class _TimeLimitedModel(WrapperModel):
    """Cuts a model call short when the run's time is up: a terminal failure, not a retry.
    Runs inside the journaled model-call step, so reading the clock here is deterministic."""

    def __init__(self, wrapped: Model, agent_name: str, timeout: float) -> None:
        super().__init__(wrapped)
        self._agent_name = agent_name
        self._timeout = timeout

    async def request(self, *args: Any, **kwargs: Any) -> ModelResponse:
        deadline = _run_deadline.get()
        if deadline is None:
            return await self.wrapped.request(*args, **kwargs)
        remaining = deadline - time.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            return await asyncio.wait_for(self.wrapped.request(*args, **kwargs), remaining)
        except TimeoutError:
            raise TerminalError(
                f"agent {self._agent_name!r} did not finish within its timeout of "
                f"{self._timeout:g}s"
            ) from None


_RESPONSE = TypeAdapter(ModelResponse)


class _ResponseSerde(Serde[ModelResponse]):
    """Journals model responses through one TypeAdapter, built once. (restate.ext.pydantic's
    serde builds a new one for every response it journals: a quarter of the gateway's CPU
    under a burst, measured with py-spy.)"""

    def deserialize(self, buf: bytes) -> ModelResponse | None:
        return _RESPONSE.validate_json(buf) if buf else None

    def serialize(self, obj: ModelResponse | None) -> bytes:
        return b"" if obj is None else _RESPONSE.dump_json(obj)


class JournaledModel(WrapperModel):
    """Makes each model call one journaled step of the Restate handler running the agent: on a
    replay the journaled response is returned and the model is not called again. The agents
    have no tools, so the model call is the only step a run takes."""

    def __init__(self, wrapped: Model, options: RunOptions[Any]) -> None:
        super().__init__(wrapped)
        self._options: RunOptions[ModelResponse] = dataclasses.replace(
            options, serde=_ResponseSerde())

    async def request(self, *args: Any, **kwargs: Any) -> ModelResponse:
        ctx = current_context()
        if ctx is None:
            raise UserError("the agent runs only inside a Restate handler (each model call is "
                            "a journaled step)")
        return await ctx.run_typed("Model call", self.wrapped.request, self._options,
                                   *args, **kwargs)

    @asynccontextmanager
    async def request_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[StreamedResponse]:
        raise UserError("streamed model calls are not journaled; run the agent with run()")
        yield  # pragma: no cover  # makes this an async generator


@dataclass
class AgentRunner:
    """A durable agent, built once per process."""

    spec: AgentSpec
    agent: Agent[None, str]
    #: the model the agent calls (its provider owns an HTTP connection pool)
    model: Model | None = None

    @property
    def model_name(self) -> str:
        return self.spec.model

    async def run(self, prompt: str, *, submitted_at: float | None = None) -> str:
        """Run inside a Restate handler: each model call is a journaled step. With a
        ``timeout`` in the spec, the run must end ``timeout`` seconds after ``submitted_at``."""
        token = None
        if self.spec.timeout and submitted_at is not None:
            token = _run_deadline.set(submitted_at + self.spec.timeout)
        try:
            result = await self.agent.run(prompt)
        finally:
            if token is not None:
                _run_deadline.reset(token)
        return result.output

    async def aclose(self) -> None:
        """Close the model's HTTP client: entering and leaving the model's context closes
        the client its provider created (pydantic-ai's lifecycle), and is a no-op otherwise."""
        if self.model is not None:
            async with self.model:
                pass


def _real_model(spec: AgentSpec) -> Model:
    """The provider's model for ``spec``, retrying transient errors inside the model step."""
    problem = provider_problem(spec.model) or key_problem(
        spec.model, api_key=bool(spec.api_key), base_url=spec.base_url, env=os.environ)
    if problem:
        raise ConfigError([f"agents.{spec.name}: {problem}"])
    info = PROVIDERS.get(spec.model.partition(":")[0])
    secrets = [spec.api_key or "", *(os.environ.get(n, "") for n in (info.key_env if info else ()))]
    return RetryingModel(
        build_model(spec.model, base_url=spec.base_url, api_key=spec.api_key),
        label=f"agent {spec.name!r}: model {spec.model!r}", attempts=spec.max_attempts,
        secrets=[s for s in secrets if len(s) >= 4], request_timeout=spec.request_timeout,
    )


def build_agent(spec: AgentSpec) -> AgentRunner:
    """Build the durable agent for ``spec``; ``GATEWAY_MODEL`` overrides the default agent's
    model."""
    if spec.name == "default" and os.environ.get("GATEWAY_MODEL"):
        spec = dataclasses.replace(spec, model=os.environ["GATEWAY_MODEL"].strip())
    model = offline_model(spec.model) if spec.model.startswith("offline") else _real_model(spec)
    if spec.timeout:
        model = _TimeLimitedModel(model, spec.name, spec.timeout)
    options: RunOptions[object] = step_options(AGENT_STEP_RETRY,
                                                max_attempts=spec.max_attempts)
    agent: Agent[None, str] = Agent(JournaledModel(model, options),
                                    instructions=spec.instructions, name=spec.name,
                                    model_settings=spec.model_settings())
    instrumentation = agent_instrumentation()
    if instrumentation is not None:  # its spans of the run and model calls (tracing is on)
        agent.instrument = instrumentation
    return AgentRunner(spec, agent, model)
