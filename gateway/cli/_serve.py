"""The commands that run the gateway: ``up`` (with a local Restate server), ``serve`` (for
containers and clusters) and ``register``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from gateway.cli._console import err, fail, out
from gateway.cli._mail import DEFAULT_MAIL_DIR, MailCatcher, MailDir, start_mailboxes
from gateway.core import ConfigError, UserInputError

if TYPE_CHECKING:
    from gateway.durable import Runtime
    from gateway.local import ApiServeOptions

__all__ = ["DEFAULT_INGRESS", "register", "serve", "up"]

DEFAULT_INGRESS = "http://localhost:8080"


class Only(StrEnum):
    """What ``gateway serve --only`` serves."""

    api = "api"
    restate = "restate"


def _warn_demo_settings(runtime: Runtime) -> None:
    """One warning line per demo-only setting (private targets allowed, the demo secret)."""
    from gateway.local.security_warnings import security_warnings

    for line in security_warnings(runtime):
        err.print(f"[bold yellow]warning:[/] {escape(line)}", soft_wrap=True)


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="GATEWAY_CONFIG", help="Gateway YAML configuration.",
                 show_default="config/gateway.yaml"),
]
AdminUrl = Annotated[
    str | None,
    typer.Option("--restate-admin-url", envvar="GATEWAY_RESTATE_ADMIN_URL",
                 help="Use this Restate server or cluster instead of starting one."),
]
IngressUrlOpt = Annotated[
    str | None,
    typer.Option("--restate-ingress-url", envvar="GATEWAY_RESTATE_INGRESS_URL",
                 help="Ingress of the Restate server given by --restate-admin-url (several "
                      "nodes: comma-separated URLs, tried in order)."),
]
ApiPort = Annotated[int, typer.Option(help="The gateway's HTTP API port.")]
DEFAULT_ADMIN = "http://localhost:9070"


def _check_ingress_urls(ingress_url: str | None) -> None:
    """A typo in the ingress URL list: one line saying what to change, before anything starts."""
    from gateway.durable.ingress_urls import parse_ingress_urls

    try:
        if ingress_url is not None:
            parse_ingress_urls(ingress_url)
    except UserInputError as exc:
        fail(str(exc), 2)


def _api_options(config: Path | None, ingress_url: str, admin_url: str, host: str,
                 port: int) -> ApiServeOptions:
    """The API's serving options: its settings from the configuration (``api``, ``hooks``),
    reloaded with it on SIGHUP (an invalid file keeps the running settings)."""
    from gateway.api import ApiSettings
    from gateway.channels import discover_plugins
    from gateway.config import (
        DEFAULT_CONFIG_PATH,
        GatewayConfig,
        load_config,
        resolve_config_path,
    )
    from gateway.local import ApiServeOptions

    plugins = discover_plugins()
    path = resolve_config_path(config)

    def load() -> ApiSettings:
        if config is None and path == DEFAULT_CONFIG_PATH and not path.exists():
            return ApiSettings.from_config(GatewayConfig())
        return ApiSettings.from_config(load_config(path, plugins=plugins))

    def reload() -> ApiSettings | None:
        try:
            return load()
        except ConfigError:
            return None  # the runtime's reload has logged why

    return ApiServeOptions(settings=load(), ingress_url=ingress_url, admin_url=admin_url,
                           host=host, port=port, reload=reload)


def up(
    config: ConfigOpt = None,
    data_dir: Annotated[Path, typer.Option(help="Where the local Restate server keeps its data.")]
    = Path(".gateway/restate"),
    ingress_port: Annotated[int, typer.Option(help="Local Restate ingress port.")] = 8080,
    admin_port: Annotated[int, typer.Option(help="Local Restate admin/UI port.")] = 9070,
    node_port: Annotated[int, typer.Option(help="Local Restate node port.")] = 5122,
    service_port: Annotated[int, typer.Option(help="The gateway's Restate endpoint port.")] = 9080,
    api_port: ApiPort = 8000,
    restate_admin_url: AdminUrl = None,
    restate_ingress_url: IngressUrlOpt = None,
    mail_dir: MailDir = DEFAULT_MAIL_DIR,
) -> None:
    """Start a local Restate server (or use --restate-admin-url), serve and register the gateway,
    and serve its HTTP API; mail the configuration sends to this machine lands in a local
    mailbox (`gateway mail`)."""
    from gateway.cli._console_key import with_console_key
    from gateway.durable import runtime_from_config
    from gateway.local import LocalEngine, ServeOptions, run_serving, serve_gateway
    from gateway.observability import setup_observability

    _check_ingress_urls(restate_ingress_url)
    setup_observability()
    runtime, reload = runtime_from_config(config)
    _warn_demo_settings(runtime)
    engine: LocalEngine | None = None
    if restate_admin_url:
        admin, ingress, ui = restate_admin_url, restate_ingress_url or DEFAULT_INGRESS, None
    else:
        engine = LocalEngine(base_dir=data_dir.resolve(), ingress_port=ingress_port,
                             admin_port=admin_port, node_port=node_port)
        err.print(f"starting restate-server (data in {data_dir}) ...")
        engine.start()
        admin, ingress, ui = engine.admin_url, engine.ingress_url, engine.ui_url
    api = _api_options(config, ingress, admin, "127.0.0.1", api_port)
    console_key = with_console_key(api)  # none configured: one for this run
    options = ServeOptions(port=service_port, register_with=admin, api=api)

    def ready() -> None:
        out.print(f"gateway API       {api.url} (GET /openapi.json)")
        out.print(f"gateway console   {api.url}/console"
                  + (f" (key for this run: {console_key})" if console_key else ""),
                  soft_wrap=True)
        out.print(f"gateway endpoint  {options.service_url} (registered)")
        out.print(f"restate ingress   {ingress}")
        out.print(f"restate admin     {admin}")
        if ui:
            out.print(f"restate UI        {ui}")
        out.print("press Ctrl-C to stop")

    mailboxes: list[MailCatcher] = []
    try:
        mailboxes = start_mailboxes(runtime, mail_dir, out)
        run_serving(serve_gateway(runtime, options, on_ready=ready, on_reload=reload))
    finally:
        for mailbox in mailboxes:
            mailbox.stop()
        if engine is not None:
            err.print("stopping restate-server ...")
            engine.stop()
    err.print("stopped")


def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    restate_port: Annotated[int, typer.Option(help="The Restate endpoint port.")] = 9080,
    register_with: Annotated[str | None, typer.Option(
        "--register-with", envvar="GATEWAY_REGISTER_WITH",
        help="Restate admin URL to register with once serving.")] = None,
    advertised_url: Annotated[str | None, typer.Option(
        envvar="GATEWAY_ADVERTISED_URL", help="URL the Restate server reaches us at.")] = None,
    identity_keys: Annotated[str | None, typer.Option(
        envvar="GATEWAY_IDENTITY_KEYS",
        help="Comma-separated publickeyv1_... keys: only the Restate server may call us.")] = None,
    api_port: ApiPort = 8000,
    only: Annotated[Only | None, typer.Option(
        help="Serve only the API or only the Restate endpoint (default: both).")] = None,
    restate_ingress_url: Annotated[str, typer.Option(
        envvar="GATEWAY_RESTATE_INGRESS_URL",
        help="Restate ingress the API calls (several nodes: comma-separated URLs, the next "
             "one tried when a connection fails).")] = DEFAULT_INGRESS,
    restate_admin_url: Annotated[str | None, typer.Option(
        envvar="GATEWAY_RESTATE_ADMIN_URL", show_default=DEFAULT_ADMIN,
        help="Restate admin API the API uses (readiness, cancel); default: --register-with.")]
    = None,
    metrics_port: Annotated[int | None, typer.Option(
        envvar="GATEWAY_METRICS_PORT",
        help="Also serve Prometheus /metrics on this port (with the API, /metrics is on the "
             "API port already; use this with --only restate).")] = None,
) -> None:
    """Serve the gateway's Restate endpoint and its HTTP API, on separate ports (no local
    engine): for containers and clusters."""
    from gateway.api import parse_identity_keys
    from gateway.durable import runtime_from_config
    from gateway.local import ServeOptions, run_serving, serve_gateway
    from gateway.observability import setup_observability

    try:  # a placeholder or a typo: one line saying what to set, before anything starts
        keys = parse_identity_keys(identity_keys)
    except UserInputError as exc:
        fail(str(exc), 2)
    _check_ingress_urls(restate_ingress_url)
    setup_observability()
    runtime, reload = runtime_from_config(config)
    api = None
    if only is not Only.restate:
        admin = restate_admin_url or register_with or DEFAULT_ADMIN
        api = _api_options(config, restate_ingress_url, admin, host, api_port)
    options = ServeOptions(host=host, port=restate_port, register_with=register_with,
                           advertised_url=advertised_url, identity_keys=keys,
                           restate=only is not Only.api, api=api, metrics_port=metrics_port)

    def ready() -> None:
        if options.restate:
            err.print(f"serving the Restate endpoint on {host}:{restate_port}")
        if api is not None:
            err.print(f"serving the API on {host}:{api_port} (Restate ingress "
                      f"{restate_ingress_url})")

    run_serving(serve_gateway(runtime, options, on_reload=reload, on_ready=ready))


def register(
    admin_url: Annotated[str, typer.Option(envvar="GATEWAY_RESTATE_ADMIN_URL",
                                           help="Restate admin API.")],
    service_url: Annotated[str, typer.Option(
        help="URL the Restate server reaches the gateway at.")],
    timeout: Annotated[float, typer.Option(help="Seconds to keep trying.")] = 300.0,
) -> None:
    """Register the gateway's endpoint with a Restate server (retries until it answers)."""
    from gateway.local import register_deployment

    def retrying(why: str) -> None:  # a Job's log says what it waits for, not nothing
        err.print(f"not registered yet, retrying for up to {timeout:g}s: {escape(why)}",
                  soft_wrap=True)

    result = register_deployment(admin_url, service_url, timeout=timeout, on_retry=retrying)
    listed = result.get("services")
    services = [s.get("name") for s in listed if isinstance(s, dict)] if isinstance(
        listed, list) else []
    out.print(f"registered {service_url}: {', '.join(str(s) for s in services)}")
