"""The configuration: one YAML file, validated into typed models with ``FILE:LINE`` errors;
the inbound hooks' mappings; the model providers an agent may name; the warnings of
``gateway config check``."""

from gateway.config.api_section import SCOPES, ApiConfig, ApiKey, HmacScheme, HookSource, Scope
from gateway.config.hooks import (
    HookRejected,
    MappingFailed,
    hook_task_id,
    replay_key,
    task_request,
    verify,
)
from gateway.config.lint import config_warnings
from gateway.config.load import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    load_config,
    parse_config,
    resolve_config_path,
)
from gateway.config.model_providers import PROVIDERS, build_model, key_problem, provider_problem
from gateway.config.schema import (
    AgentConfig,
    ChannelConfig,
    Destination,
    GatewayConfig,
    Match,
    StandingSubscription,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "PROVIDERS",
    "SCOPES",
    "AgentConfig",
    "ApiConfig",
    "ApiKey",
    "ChannelConfig",
    "Destination",
    "GatewayConfig",
    "HmacScheme",
    "HookRejected",
    "HookSource",
    "MappingFailed",
    "Match",
    "Scope",
    "StandingSubscription",
    "build_model",
    "config_warnings",
    "hook_task_id",
    "key_problem",
    "load_config",
    "parse_config",
    "provider_problem",
    "replay_key",
    "resolve_config_path",
    "task_request",
    "verify",
]
