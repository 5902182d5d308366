"""The ``gateway`` command line: run the gateway, start tasks, subscribe, follow them."""

from __future__ import annotations

import asyncio
import sys
import uuid
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.cli._config import config_app
from gateway.cli._mail import DEFAULT_MAIL_DIR, MailCatcher, MailDir, mail_app, start_mailboxes
from gateway.cli._progress import delivery_table, finished, follow
from gateway.core import (
    ConfigError,
    GatewayError,
    Subscription,
    TaskRequest,
    TaskState,
    TaskStatus,
    UserInputError,
    repeat_note,
    task_state_text,
)
from gateway.durable import ApiClient, GatewayClient

if TYPE_CHECKING:
    from gateway.durable import Runtime
    from gateway.local import ApiServeOptions

__all__ = ["app", "main"]


class Only(StrEnum):
    """What ``gateway serve --only`` serves."""

    api = "api"
    restate = "restate"

app = typer.Typer(
    name="gateway",
    help="Notification gateway for long-running AI agent tasks, on Restate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")
app.add_typer(mail_app, name="mail")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"gateway {version('notification-gateway')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
    = False,
) -> None:
    """Notification gateway for long-running AI agent tasks, on Restate."""


ShowTargets = Annotated[bool, typer.Option(
    "--show-targets", help="Show subscribers' addresses and URLs in full (masked by default).")]

IngressUrl = Annotated[
    str,
    typer.Option("--ingress-url", envvar="GATEWAY_RESTATE_INGRESS_URL",
                 help="Restate ingress that serves the gateway (several nodes: comma-separated "
                      "URLs, the next one tried when a connection fails)."),
]
DEFAULT_INGRESS = "http://localhost:8080"
ApiUrl = Annotated[
    str | None,
    typer.Option("--api-url", envvar="GATEWAY_API_URL",
                 help="Use the gateway's HTTP API (with --api-key) instead of the ingress."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="GATEWAY_API_KEY", show_default=False,
                 help="API key for --api-url (better: set GATEWAY_API_KEY)."),
]


def _client(ingress_url: str, api_url: str | None,
            api_key: str | None) -> GatewayClient | ApiClient:
    if api_url:
        if not api_key:
            fail("--api-url needs an API key: --api-key or GATEWAY_API_KEY", 2)
        return ApiClient(api_url, api_key)
    return GatewayClient(ingress_url)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _warn_demo_settings(runtime: Runtime) -> None:
    """One warning line per demo-only setting (private targets allowed, the demo secret)."""
    from gateway.local.security_warnings import security_warnings

    for line in security_warnings(runtime):
        err.print(f"[bold yellow]warning:[/] {escape(line)}", soft_wrap=True)


def _parse_labels(values: list[str]) -> dict[str, str]:
    labels = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--label {item!r}: write labels as KEY=VALUE (e.g. --label team=ml)", 2)
        labels[key.strip()] = value.strip()
    return labels


def _parse_subscriber(value: str) -> Subscription:
    try:
        return Subscription.parse(value)
    except ValueError as exc:
        fail(str(exc).splitlines()[0], 2)


@app.command()
def submit(
    prompt: Annotated[str, typer.Argument(help="What the agent should do.")],
    task_id: Annotated[str | None, typer.Option("--task-id", help="Task id (default: new)")] = None,
    agent: Annotated[str, typer.Option(help="Agent to run the task.")] = "default",
    label: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE")] = None,
    notify: Annotated[list[str] | None, typer.Option(
        "--notify", help="Subscriber: an email address or CHANNEL:TARGET (repeatable).")] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait for the result and deliveries.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 300.0,
    show_targets: ShowTargets = False,
    ingress_url: IngressUrl = DEFAULT_INGRESS,
    api_url: ApiUrl = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Start a task. The same --task-id twice runs it once."""
    if not prompt.strip():
        fail("the prompt is empty: say what the agent should do", 2)
    subs = [_parse_subscriber(n) for n in (notify or [])]
    request = TaskRequest(prompt=prompt, agent=agent, labels=_parse_labels(label or []),
                          subscriptions=subs)
    task_id = task_id or f"t-{uuid.uuid4().hex[:12]}"
    with _client(ingress_url, api_url, api_key) as client:
        submitted = client.submit(task_id, request)
        if submitted.new:
            out.print(f"task {task_id} started")
        else:
            out.print(f"task {task_id} was submitted before: it runs once, not started again"
                      + repeat_note(submitted.added, len(subs)))
        if wait:
            status = follow(lambda: client.status(task_id), out, timeout=timeout,
                            show_targets=show_targets)
            _print_status(status, show_targets)
            _exit_for(status, timeout)


@app.command()
def subscribe(
    task_id: Annotated[str, typer.Argument(help="The task to subscribe to.")],
    subscriber: Annotated[str, typer.Argument(help="Email address or CHANNEL:TARGET.")],
    ingress_url: IngressUrl = DEFAULT_INGRESS,
    api_url: ApiUrl = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Add a subscriber to a task, at any time (after it finished: delivered at once)."""
    sub = _parse_subscriber(subscriber)
    with _client(ingress_url, api_url, api_key) as client:
        result = client.subscribe(task_id, sub)
    out.print(f"subscribed {result['channel']}:{result['target']} to task {task_id} "
              f"(subscription {result['subscription_id']})")


@app.command()
def status(
    task_id: Annotated[str, typer.Argument(help="The task to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    follow_: Annotated[bool, typer.Option(
        "--follow", "-f", help="Show progress live until every delivery settled.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --follow follows at most.")] = 300.0,
    show_targets: ShowTargets = False,
    ingress_url: IngressUrl = DEFAULT_INGRESS,
    api_url: ApiUrl = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Show a task's state and every delivery."""
    with _client(ingress_url, api_url, api_key) as client:
        if follow_ and as_json:  # quietly, then the settled status
            result = client.status(task_id)
            if result.state is not TaskState.UNKNOWN or result.deliveries:
                result = client.wait(task_id, timeout)
        elif follow_:
            result = follow(lambda: client.status(task_id), out, timeout=timeout,
                            show_targets=show_targets, unknown_ends=True)
        else:
            result = client.status(task_id)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        _print_status(result, show_targets)
    if result.state is TaskState.UNKNOWN:
        raise typer.Exit(1)
    if follow_ and not finished(result):
        fail(f"still not settled after {timeout:g}s (state {result.state.value})")


def _print_status(s: TaskStatus, show_targets: bool = False) -> None:
    if s.state is TaskState.UNKNOWN:
        err.print(f"no task {s.task_id!r} (never submitted, or past its retention)")
        return
    agent = f"  [bold]agent[/] {s.agent}" if s.agent else ""
    out.print(f"[bold]task[/] {s.task_id}  [bold]state[/] {escape(task_state_text(s))}{agent}")
    if s.output:
        out.print(f"[bold]result[/] {escape(s.output)}")
    if s.error:
        out.print(f"[bold]error[/] {escape(s.error)}")
    if s.deliveries:
        out.print(delivery_table(s, show_targets=show_targets))
    else:
        out.print("no deliveries yet")


def _exit_for(s: TaskStatus, timeout: float) -> None:
    if s.state not in (TaskState.SUCCEEDED, TaskState.FAILED) or not all(
        d.state.final for d in s.deliveries
    ):
        fail(f"not finished within {timeout:g}s (state {s.state.value})")
    if s.state is TaskState.FAILED or any(d.state.value in ("failed", "rejected")
                                          for d in s.deliveries):
        raise typer.Exit(1)


def main() -> None:
    """Entry point: one line per error a user can fix, never a traceback."""
    try:
        app()
    except UserInputError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    except GatewayError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


# --- running the gateway --------------------------------------------------------------------

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


@app.command()
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
    from gateway.durable import runtime_from_config
    from gateway.local import LocalEngine, ServeOptions, serve_gateway
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
    options = ServeOptions(port=service_port, register_with=admin, api=api)

    def ready() -> None:
        out.print(f"gateway API       {api.url} (GET /openapi.json)")
        out.print(f"gateway endpoint  {options.service_url} (registered)")
        out.print(f"restate ingress   {ingress}")
        out.print(f"restate admin     {admin}")
        if ui:
            out.print(f"restate UI        {ui}")
        out.print("press Ctrl-C to stop")

    mailboxes: list[MailCatcher] = []
    try:
        mailboxes = start_mailboxes(runtime, mail_dir, out)
        asyncio.run(serve_gateway(runtime, options, on_ready=ready, on_reload=reload))
    finally:
        for mailbox in mailboxes:
            mailbox.stop()
        if engine is not None:
            err.print("stopping restate-server ...")
            engine.stop()
    err.print("stopped")


@app.command()
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
    from gateway.local import ServeOptions, serve_gateway
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

    asyncio.run(serve_gateway(runtime, options, on_reload=reload, on_ready=ready))


@app.command("api-key")
def api_key(
    name: Annotated[str, typer.Argument(help="Who holds the key (shown in logs).")],
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="submit, subscribe or read (repeatable; default: all three).")] = None,
    tenant: Annotated[str | None, typer.Option(
        "--tenant", help="The tenant the key acts for: it sees only that tenant's tasks.",
        show_default=False)] = None,
) -> None:
    """Make an API key: prints the key (once) and the line that goes under api.keys."""
    from pydantic import ValidationError

    from gateway.api import hash_key, new_key
    from gateway.config import SCOPES, ApiKey

    scopes = list(dict.fromkeys(scope or SCOPES))
    try:
        entry = ApiKey.model_validate({"name": name, "hash": hash_key("x"), "scopes": scopes,
                                       "tenant": tenant})
    except ValidationError as exc:
        problem = exc.errors()[0]
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["loc"][0] == "scopes":
            fail(f"--scope: {message} (scopes: {', '.join(SCOPES)})", 2)
        if problem["loc"][0] == "tenant":
            fail(f"--tenant: {message}", 2)
        fail(f"NAME: {message}", 2)
    key = new_key()
    err.print(f"API key for {entry.name} (shown once: hand it over, keep it out of files "
              "and logs):")
    out.print(key, markup=False)
    err.print("add to the configuration, under api.keys:")
    owner = f", tenant: {entry.tenant}" if entry.tenant else ""
    out.print(f'  - {{name: {entry.name}, hash: "{hash_key(key)}", '
              f"scopes: [{', '.join(entry.scopes)}]{owner}}}", soft_wrap=True, markup=False)


@app.command()
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


@app.command()
def channels() -> None:
    """List the installed channel plugins."""
    from gateway.channels import discover_plugins

    table = Table("channel", "distribution", "version", "class")
    for name, plugin in sorted(discover_plugins().items()):
        table.add_row(name, plugin.distribution, plugin.version,
                      f"{plugin.cls.__module__}.{plugin.cls.__qualname__}")
    out.print(table)


@app.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every delivery.")] = 60.0,
) -> None:
    """Run one sample task end to end on loopback and show each delivery as it arrives."""
    from gateway.local import run_demo
    from gateway.observability import setup_observability

    setup_observability()
    code = run_demo(out, timeout=timeout)
    raise typer.Exit(code)
