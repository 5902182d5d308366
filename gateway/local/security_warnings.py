"""What ``gateway up``/``serve`` warn about before serving: settings for a local demo only.

* a channel allowed to reach private targets (``allow_private_targets``): the egress guard
  lets it connect to loopback, private and link-local addresses;
* the published demo webhook secret of ``config/gateway.yaml`` (in a channel's options or in
  ``WEBHOOK_SECRET``): anyone can sign as the gateway with it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from gateway.durable import Runtime

__all__ = ["DEMO_WEBHOOK_SECRET", "security_warnings"]

#: the demo's signing key, published in config/gateway.yaml (protects nothing)
DEMO_WEBHOOK_SECRET = "whsec_ZGVtby1vbmx5LWtleS1mb3ItdGhlLWxvb3BiYWNrLXJlY2VpdmVy"


def _mentions(value: object, secret: str) -> bool:
    if isinstance(value, str):
        return value.strip() == secret
    if isinstance(value, list | tuple):
        return any(_mentions(v, secret) for v in value)
    if isinstance(value, Mapping):
        return any(_mentions(v, secret) for v in value.values())
    return False


def security_warnings(runtime: Runtime, env: Mapping[str, str] | None = None) -> list[str]:
    """One line per demo-only setting the runtime serves with (none for a production setup)."""
    env = os.environ if env is None else env
    lines = []
    for name in runtime.channels.names:
        inst = runtime.channels.get(name)
        if inst.allow_private_targets:
            lines.append(
                f"channel {name!r} allows private targets (allow_private_targets): the egress "
                "guard lets it connect to loopback, private and link-local addresses; use this "
                "for a local demo or an intranet only")
        if _mentions(dict(inst.options), DEMO_WEBHOOK_SECRET):
            lines.append(
                f"channel {name!r} signs with the published demo secret of config/gateway.yaml: "
                "anyone can forge its signatures; set your own (whsec_ + `openssl rand -base64 "
                "32`, from ${WEBHOOK_SECRET})")
    if DEMO_WEBHOOK_SECRET in re.split(r"[\s,]+", env.get("WEBHOOK_SECRET", "")):
        lines.append("WEBHOOK_SECRET holds the published demo secret of config/gateway.yaml: "
                     "anyone can forge webhook signatures; set your own")
    return lines
