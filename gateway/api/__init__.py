"""The HTTP front door: API keys and tenants, the endpoints and their OpenAPI document,
inbound hooks, body limits, and the link to Restate's ingress. A new endpoint is a handler
(``_tasks``, ``_inbound``, ``_probes``, or a new small module), its row in ``_operations``
(which makes its route and its OpenAPI entry) and its models in ``_models``; ``front_door``
assembles the app. Names load on first use."""

from typing import TYPE_CHECKING

from gateway.core.lazy import lazy_attribute

if TYPE_CHECKING:
    from gateway.api.auth import Caller, KeyRing, Unauthenticated, hash_key, new_key
    from gateway.api.front_door import OPERATIONS, ApiSettings, FrontDoor, create_api
    from gateway.api.http_server import serve_api
    from gateway.api.identity_keys import encode_public_key, parse_identity_keys
    from gateway.api.restate_link import RestateFailed, RestateLink

__all__ = [
    "OPERATIONS",
    "ApiSettings",
    "Caller",
    "FrontDoor",
    "KeyRing",
    "RestateFailed",
    "RestateLink",
    "Unauthenticated",
    "create_api",
    "encode_public_key",
    "hash_key",
    "new_key",
    "parse_identity_keys",
    "serve_api",
]

_WHERE = {
    "Caller": "auth", "KeyRing": "auth", "Unauthenticated": "auth", "hash_key": "auth",
    "new_key": "auth",
    "OPERATIONS": "front_door", "ApiSettings": "front_door", "FrontDoor": "front_door",
    "create_api": "front_door",
    "serve_api": "http_server",
    "encode_public_key": "identity_keys", "parse_identity_keys": "identity_keys",
    "RestateFailed": "restate_link", "RestateLink": "restate_link",
}


def __getattr__(name: str) -> object:
    return lazy_attribute(__name__, _WHERE, name)


def __dir__() -> list[str]:
    return sorted(__all__)
