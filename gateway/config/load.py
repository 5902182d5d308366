"""Loading the configuration: the file to use, read within its size limit, then checked
(:mod:`gateway.config.check`) into a :class:`~gateway.config.schema.GatewayConfig` with every
problem reported at once."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config._yaml_limits import MAX_CONFIG_BYTES, YamlLimitError, check_size
from gateway.config.check import check
from gateway.core import ConfigError

if TYPE_CHECKING:
    from gateway.channels import ChannelPlugin
    from gateway.config.schema import GatewayConfig

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "load_config",
    "parse_config",
    "resolve_config_path",
]

DEFAULT_CONFIG_PATH = Path("config/gateway.yaml")
CONFIG_ENV_VAR = "GATEWAY_CONFIG"


def resolve_config_path(
    cli_value: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Path:
    """The configuration file to use: ``--config``, else ``$GATEWAY_CONFIG``, else the default."""
    if cli_value:
        return Path(cli_value)
    from_env = (os.environ if env is None else env).get(CONFIG_ENV_VAR, "").strip()
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH


def parse_config(
    text: str,
    *,
    plugins: Mapping[str, ChannelPlugin],
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    output_schemas: Collection[str] | None = None,
) -> GatewayConfig:
    """Validate configuration ``text``; raise :class:`ConfigError` with every problem.

    ``plugins`` are the installed channel plugins (``discover_plugins()``); ``env`` defaults
    to the process environment; ``output_schemas``, when given, are the known schema names.
    """
    config, errors, secrets = check(
        text, plugins=plugins, source=source, env=os.environ if env is None else env,
        output_schemas=output_schemas,
    )
    if errors or config is None:
        raise ConfigError(errors)
    config._source = source
    config._hide(secrets)
    return config


def load_config(
    path: str | os.PathLike[str],
    *,
    plugins: Mapping[str, ChannelPlugin],
    env: Mapping[str, str] | None = None,
    output_schemas: Collection[str] | None = None,
) -> GatewayConfig:
    """Read and validate the configuration file at ``path`` (see :func:`parse_config`)."""
    source = str(path)
    try:
        with Path(path).open("rb") as file:  # never more than the limit into memory
            raw = file.read(MAX_CONFIG_BYTES + 1)
            if len(raw) > MAX_CONFIG_BYTES:
                check_size(max(os.fstat(file.fileno()).st_size, len(raw)))
        text = raw.decode("utf-8")
    except YamlLimitError as exc:
        raise ConfigError([f"{source}: {exc.message}"]) from None
    except FileNotFoundError:
        raise ConfigError([
            f"{source}: no such file; give the path with --config or {CONFIG_ENV_VAR}"
        ]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    return parse_config(text, plugins=plugins, source=source, env=env,
                        output_schemas=output_schemas)
