"""The ``gateway`` command line: run the gateway, start tasks, subscribe, follow them."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gateway.cli._config import config_app
from gateway.cli._console import err, fail, out
from gateway.cli._mail import mail_app
from gateway.cli._progress import delivery_table, finished, follow
from gateway.cli._redrive import redrive_failed
from gateway.cli._serve import DEFAULT_INGRESS, register, serve, up
from gateway.cli._tasks import tasks
from gateway.core import (
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

__all__ = ["app", "main"]

app = typer.Typer(
    name="gateway",
    help="Notification gateway for long-running AI agent tasks, on Restate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")
app.add_typer(mail_app, name="mail")
app.command()(tasks)  # recent tasks from the task index


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
def cancel(
    task_id: Annotated[str, typer.Argument(help="The task.")],
    subscription_id: Annotated[str, typer.Argument(help="The waiting subscription (s_...).")],
    ingress_url: IngressUrl = DEFAULT_INGRESS,
    api_url: ApiUrl = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Cancel a subscription still waiting: nothing is sent to it afterwards."""
    with _client(ingress_url, api_url, api_key) as client:
        receipt = client.cancel(task_id, subscription_id)
    out.print(f"cancelled subscription {receipt.subscription_id} of task {task_id}")


@app.command()
def redrive(
    task_id: Annotated[str | None, typer.Argument(help="The task.")] = None,
    subscription_id: Annotated[str | None, typer.Argument(
        help="The failed subscription (s_...).")] = None,
    channel: Annotated[str | None, typer.Option(
        help="Instead: every failed delivery on this channel (through the API).")] = None,
    target: Annotated[str | None, typer.Option(
        help="With --channel: only deliveries to this target.")] = None,
    since: Annotated[str | None, typer.Option(
        help="With --channel: failed at or after this time (ISO 8601, or an age: 90m, 6h, "
             "2d).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (--channel).")] = False,
    ingress_url: IngressUrl = DEFAULT_INGRESS,
    api_url: ApiUrl = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Deliver a failed subscription again (the same message id), or with --channel and
    --since every delivery on a channel that failed since then."""
    if channel is not None or since is not None:
        if task_id is not None or channel is None or since is None:
            fail("give either TASK SUBSCRIPTION, or --channel and --since (no task)", 2)
        redrive_failed(channel, target, since, api_url=api_url or "http://localhost:8000",
                       api_key=api_key, as_json=as_json)
        return
    if task_id is None or subscription_id is None:
        fail("give TASK SUBSCRIPTION (the failed subscription's id: status --json), or "
             "--channel and --since", 2)
    with _client(ingress_url, api_url, api_key) as client:
        receipt = client.redrive(task_id, subscription_id)
    out.print(f"redriving subscription {receipt.subscription_id} of task {task_id} "
              f"(state {receipt.state.value}, {receipt.attempts} attempts before)")


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


# --- running the gateway (gateway.cli._serve) ---------------------------------------------
app.command()(up)
app.command()(serve)


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


app.command()(register)


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
