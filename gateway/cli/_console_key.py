"""``gateway up``'s console key: when the configuration has no API keys, one made for this
run (read and subscribe scopes, the tasks of no tenant), printed once, so the console at
``/console`` of the local API can be opened at once. Kept across SIGHUP reloads while the
file still has no keys; gone when the process stops. ``gateway serve`` never makes one."""

from __future__ import annotations

import dataclasses

from gateway.api import ApiSettings, KeyRing, hash_key, new_key
from gateway.config import ApiKey
from gateway.local import ApiServeOptions

__all__ = ["LOCAL_CONSOLE_KEY", "with_console_key"]

LOCAL_CONSOLE_KEY = "local-console"


def with_console_key(api: ApiServeOptions) -> str | None:
    """Give ``api`` a key for this run when its settings have none; the key (None: the
    configuration has keys, use one of those)."""
    if len(api.settings.keys):
        return None
    key = new_key()
    ring = KeyRing([ApiKey(name=LOCAL_CONSOLE_KEY, hash=hash_key(key),
                           scopes=["read", "subscribe"])])

    def keyed(settings: ApiSettings) -> ApiSettings:
        return settings if len(settings.keys) else dataclasses.replace(settings, keys=ring)

    api.settings = keyed(api.settings)
    reload = api.reload
    if reload is not None:
        def reload_keyed() -> ApiSettings | None:
            new = reload()
            return None if new is None else keyed(new)

        api.reload = reload_keyed
    return key
