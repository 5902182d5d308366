"""Each package's public names, pinned: a change to them is a change of the gateway's API.

Every name in ``__all__`` resolves (lazily exported ones too), and ``__all__`` is exactly
the list below: add a name here when you mean to export it.
"""

from __future__ import annotations

import importlib

import pytest

EXPORTED = {
    "gateway.core": [
        "CHANNEL_NAME", "CHANNEL_NAME_PATTERN", "CHANNEL_NAME_RULE", "DEFAULT_TEMPLATES",
        "MARKER", "MASK", "MIN_SECRET_LENGTH", "SECRET", "TENANT_SEPARATOR",
        "AttemptRecord", "ConfigError", "DeliveryError", "DeliveryReceipt", "DeliveryState",
        "EngineError", "GatewayError", "Outcome", "PermanentDeliveryError", "PluginError",
        "RenderError", "RetryPolicy", "Subscription", "SubscriptionError", "Target", "Task",
        "TaskInputError", "TaskRequest", "TaskResult", "TaskState", "TaskStatus",
        "TemplateProblem", "TemplateSet", "TransientDeliveryError", "UserInputError",
        "delivery_state_text", "fallback_chain", "mask_email", "mask_phone", "redactor",
        "repeat_note", "route", "secret_values", "shorten", "shown_task_id", "subscription_id",
        "task_state_text",
    ],
    "gateway.channels": [
        "BUILTIN_OPEN_PLUGINS", "ENTRY_POINT_GROUP", "REDACTED", "SECRET", "TIMEOUT_OPTION",
        "Channel", "ChannelInstance", "ChannelPlugin", "Channels", "DeliveryError",
        "EgressPolicy", "EgressRefused", "GuardedSender", "MASK", "Message", "MessageKind",
        "NoOptions", "PermanentDeliveryError", "PostClient", "PostResponse",
        "PostTransportError", "Renderer", "SendReceipt", "TaskView",
        "TimeoutOption", "TransientDeliveryError", "check_templates", "check_untrusted",
        "classify_address", "classify_host", "current_policy", "discover_plugins",
        "egress_policy", "format_problem", "format_validation_error", "http_failure",
        "mask_email", "mask_phone", "open_channels", "parse_retry_after", "redactor", "shorten",
        "split_timeout", "whsec_key",
    ],
    "gateway.config": [
        "CONFIG_ENV_VAR", "DEFAULT_CONFIG_PATH", "PROVIDERS", "SCOPES", "AgentConfig",
        "ApiConfig", "ApiKey", "ChannelConfig", "Destination", "GatewayConfig", "HmacScheme",
        "HookRejected", "HookSource", "MappingFailed", "Match", "Scope",
        "StandingSubscription", "build_model", "config_warnings", "hook_task_id",
        "key_problem", "load_config", "parse_config", "provider_problem", "replay_key",
        "resolve_config_path", "task_request", "verify",
    ],
    "gateway.observability": [
        "bind_delivery", "configure_logging", "metrics", "restate_server_tracing_env",
        "set_redactor", "setup_observability", "trace", "tracer_provider",
        "tracer_provider_from_env",
    ],
    "gateway.durable": [
        "RESULT_PROMISE", "AgentRunner", "AgentSpec", "ApiClient", "GatewayClient", "Runtime",
        "Submitted", "build_agent", "build_runtime", "create_app", "current_runtime",
        "deliveries", "install_runtime", "runtime_for", "runtime_from_config", "serve_app",
    ],
    "gateway.api": [
        "OPERATIONS", "ApiSettings", "Caller", "FrontDoor", "KeyRing", "RestateFailed",
        "RestateLink", "Unauthenticated", "create_api", "encode_public_key", "hash_key",
        "new_key", "parse_identity_keys", "serve_api",
    ],
    "gateway.console": ["CONSOLE_PATH", "Sessions", "console_app", "console_mount"],
    "gateway.local": [
        "DEMO_WEBHOOK_SECRET", "ApiServeOptions", "LocalEngine", "Mailbox", "ReceivedWebhook",
        "ServeOptions", "WebhookReceiver", "find_server_binary", "free_port", "port_in_use",
        "register_deployment", "run_demo", "run_serving", "serve_gateway",
    ],
    "gateway.cli": ["main"],
}


@pytest.mark.parametrize("package", sorted(EXPORTED))
def test_the_public_names_of_each_package_are_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(EXPORTED[package])
    assert len(set(module.__all__)) == len(module.__all__), "a name is exported twice"


@pytest.mark.parametrize("package", sorted(EXPORTED))
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert missing == []


def test_an_unknown_name_of_a_lazy_package_is_a_clear_attribute_error() -> None:
    durable = importlib.import_module("gateway.durable")
    with pytest.raises(AttributeError, match=r"'gateway\.durable' has no attribute 'nope'"):
        _ = durable.nope


def test_a_plugin_needs_nothing_but_the_channels_package() -> None:
    from gateway import channels, core

    assert channels.PermanentDeliveryError is core.PermanentDeliveryError
    assert channels.TransientDeliveryError is core.TransientDeliveryError
    assert channels.shorten is core.shorten
