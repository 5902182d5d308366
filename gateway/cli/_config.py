"""``gateway config ...``: check a configuration file before the gateway runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.channels import discover_plugins
from gateway.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    config_warnings,
    load_config,
    resolve_config_path,
)
from gateway.core import ConfigError, PluginError

__all__ = ["config_app"]

config_app = typer.Typer(
    help="Check the gateway's YAML configuration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@config_app.callback()
def _config() -> None:
    """Check the gateway's YAML configuration."""


@config_app.command(
    "check",
    help="Validate FILE: each channel's options against its plugin, every ${ENV} reference "
    "and every template. Exit 0 with a one-line summary (after a line per warning, on "
    "stderr), or 1 with one line per problem.",
)
def check(
    file: Annotated[
        Path | None,
        typer.Argument(
            help=f"Configuration file (default: ${CONFIG_ENV_VAR}, else {DEFAULT_CONFIG_PATH}).",
            show_default=False,
        ),
    ] = None,
) -> None:
    path = resolve_config_path(file)
    try:
        config = load_config(path, plugins=discover_plugins())
    except (ConfigError, PluginError) as exc:
        lines = exc.errors if isinstance(exc, ConfigError) else [f"{path}: {exc}"]
        for line in lines:
            typer.echo(line, err=True)
        raise typer.Exit(1) from None
    for line in config_warnings(config):
        typer.echo(line, err=True)
    typer.echo(f"{path}: ok — {config.summary()}")
