"""Warnings of ``gateway config check``: settings that are valid but weaker than they look.

A warning never fails the check (exit 0); each is one line naming the key path and what to
change.
"""

from __future__ import annotations

from gateway.channels import TIMEOUT_OPTION
from gateway.config.hooks import signs_timestamp
from gateway.config.schema import GatewayConfig

__all__ = ["config_warnings"]


def config_warnings(config: GatewayConfig) -> list[str]:
    """One line per warning, prefixed with the file (``FILE: warning: KEY PATH: ...``)."""
    lines: list[str] = _timeout_options(config)
    for name, hook in config.hooks.items():
        scheme = hook.hmac
        if scheme is None or signs_timestamp(scheme):
            continue
        where = f"{config.source}: warning: hooks.{name}.hmac"
        if scheme.timestamp_header is None:
            lines.append(
                f"{where}: no timestamp_header, so a captured delivery stays valid forever: "
                "sent again it is the same task (named by the body's digest) only while "
                "Restate keeps that task; set timestamp_header and sign {timestamp} if the "
                "source sends a signed timestamp")
        else:
            lines.append(
                f"{where}: timestamp_header {scheme.timestamp_header} is not signed (no "
                "{timestamp} in signed), so anyone can make a delivery look fresh; add "
                "{timestamp} to signed as the source signs it")
    return lines


def _timeout_options(config: GatewayConfig) -> list[str]:
    """A channel's ``options.timeout``: still honoured (it lowers the attempt timeout), but
    the one time limit of an attempt is ``retry.attempt_timeout``."""
    lines: list[str] = []
    for name, channel in config.channels.items():
        value = channel.options.get(TIMEOUT_OPTION)
        if value is None:
            continue
        lines.append(
            f"{config.source}: warning: channels.{name}.options.timeout: write retry: "
            f"{{attempt_timeout: {value}}} instead (the one time limit of an attempt, which "
            "this option only lowers; plugins have no timeout option of their own)")
    return lines
