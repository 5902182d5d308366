"""Real model providers: which are installed, what key each needs, and building a model.

A model string is ``PROVIDER:MODEL`` as pydantic-ai spells it. The installed providers are
the extras of ``pydantic-ai-slim`` named in pyproject.toml. A provider's SDK is imported only
when an agent is configured with it (in :func:`build_model`), so the gateway's start does not
pay for SDKs it does not use.

``openai:MODEL`` with a ``base_url`` is any OpenAI-compatible server (Ollama, vLLM, a LiteLLM
proxy): it is spoken to with the chat-completions API, which all of them serve, and needs no
key unless the server asks for one. Without a ``base_url`` it is OpenAI itself, through the
API pydantic-ai chooses for OpenAI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_ai.models import Model

__all__ = ["PROVIDERS", "ProviderInfo", "build_model", "key_problem", "provider_problem"]


@dataclass(frozen=True)
class ProviderInfo:
    """What the gateway knows of one installed provider."""

    #: environment variables the provider reads its key from (any one); empty: not a key
    key_env: tuple[str, ...]
    #: accepts ``base_url`` (an OpenAI-compatible or proxy endpoint)
    base_url: bool = True


PROVIDERS: dict[str, ProviderInfo] = {
    "openai": ProviderInfo(("OPENAI_API_KEY",)),
    "openai-chat": ProviderInfo(("OPENAI_API_KEY",)),
    "openai-responses": ProviderInfo(("OPENAI_API_KEY",)),
    "anthropic": ProviderInfo(("ANTHROPIC_API_KEY",)),
    "google": ProviderInfo(("GOOGLE_API_KEY", "GEMINI_API_KEY")),
    "groq": ProviderInfo(("GROQ_API_KEY",)),
    "mistral": ProviderInfo(("MISTRAL_API_KEY",)),
    # AWS credentials come from the usual chain (environment, profile, instance role); an
    # api_key is a Bedrock API key (bearer token)
    "bedrock": ProviderInfo(()),
}
_OPENAI = ("openai", "openai-chat", "openai-responses")


def _known() -> str:
    return ", ".join(["offline", *sorted(PROVIDERS)])


def provider_problem(model: str) -> str | None:
    """Why ``model`` (``PROVIDER:MODEL``) names no installed provider, or None."""
    provider, _, name = model.partition(":")
    if provider == "offline":
        return None
    if provider not in PROVIDERS:
        return f"unknown model provider {provider!r} in {model!r}; known: {_known()}"
    if not name.strip():
        return f"model {model!r} names no model; write {provider}:MODEL"
    return None


def key_problem(model: str, *, api_key: bool, base_url: str | None,
                env: Mapping[str, str]) -> str | None:
    """Why ``model`` cannot authenticate (no ``api_key`` and none in ``env``), or None."""
    provider = model.partition(":")[0]
    info = PROVIDERS.get(provider)
    if info is None or not info.key_env or api_key:
        return None
    if provider in _OPENAI and (base_url or env.get("OPENAI_BASE_URL")):
        return None  # a local OpenAI-compatible server needs no key unless it says so
    if any(env.get(name) for name in info.key_env):
        return None
    names = " or ".join(info.key_env)
    return f"model {model!r} needs {names} or api_key"


def build_model(model: str, *, base_url: str | None = None, api_key: str | None = None) -> Model:
    """The pydantic-ai model for ``model``; imports only that provider's SDK."""
    provider_name, _, model_name = model.partition(":")
    kwargs: dict[str, Any] = {}
    if api_key:
        kwargs["api_key"] = api_key
    if base_url:
        kwargs["base_url"] = base_url
    if provider_name in _OPENAI:
        from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
        from pydantic_ai.providers.openai import OpenAIProvider

        openai = OpenAIProvider(**kwargs)
        if provider_name == "openai-chat" or (provider_name == "openai" and base_url):
            return OpenAIChatModel(model_name, provider=openai)
        return OpenAIResponsesModel(model_name, provider=openai)

    from pydantic_ai.models import infer_model
    from pydantic_ai.providers import infer_provider_class

    provider = infer_provider_class(provider_name)(**kwargs)
    return infer_model(model, provider_factory=lambda _name: provider)
