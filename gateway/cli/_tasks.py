"""``gateway tasks``: recent tasks from the task index, newest first, filtered like the
console's list; through the gateway's API (``--api-url`` with a key) or the Restate ingress."""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gateway.api.auth import Caller
from gateway.api.restate_link import RestateFailed, RestateLink
from gateway.api.task_list import TaskList, list_tasks, parse_filter
from gateway.cli._console import fail, out
from gateway.durable import ApiClient

__all__ = ["tasks"]

DEFAULT_INGRESS = "http://127.0.0.1:8080"


def _params(state: str | None, agent: str | None, channel: str | None, labels: list[str],
            limit: int, cursor: str | None) -> list[tuple[str, str]]:
    pairs = [("state", state), ("agent", agent), ("channel", channel), ("cursor", cursor),
             ("limit", str(limit))]
    return [(k, v) for k, v in pairs if v] + [("label", label) for label in labels]


def _from_api(api_url: str, api_key: str, params: list[tuple[str, str]]) -> TaskList:
    with ApiClient(api_url, api_key) as client:
        return TaskList.model_validate(client.tasks(params))


def _from_ingress(ingress_url: str, params: list[tuple[str, str]]) -> TaskList:
    from gateway.api._http import ApiError

    try:
        flt = parse_filter(params)
    except ApiError as exc:
        fail(exc.message, 2)

    async def read() -> TaskList:
        link = RestateLink(ingress_url, "http://127.0.0.1:9070")  # the admin API is not used
        try:  # the ingress is the operator's own: the tasks of no tenant
            return await list_tasks(link, Caller("cli", frozenset({"read"})), flt)
        finally:
            await link.aclose()

    try:
        return asyncio.run(read())
    except RestateFailed as exc:
        fail(f"cannot list tasks through the Restate ingress at {ingress_url}: {exc}; is "
             "`gateway up` running?")


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else ""


def tasks(
    state: Annotated[str | None, typer.Option(help="running, succeeded, failed, ...")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's tasks.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only tasks with a subscriber on it.")]
    = None,
    label: Annotated[list[str] | None, typer.Option(
        "--label", "-l", help="KEY=VALUE; repeat for several.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Tasks per page.")] = 25,
    cursor: Annotated[str | None, typer.Option(help="The next page (printed below a page).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="The page as JSON.")] = False,
    ingress_url: Annotated[str, typer.Option(
        "--ingress-url", envvar="GATEWAY_RESTATE_INGRESS_URL",
        help="Restate ingress that serves the gateway.")] = DEFAULT_INGRESS,
    api_url: Annotated[str | None, typer.Option(
        "--api-url", envvar="GATEWAY_API_URL",
        help="Use the gateway's HTTP API (with --api-key) instead of the ingress.")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="GATEWAY_API_KEY", show_default=False,
        help="API key for --api-url (better: set GATEWAY_API_KEY).")] = None,
) -> None:
    """Recent tasks, newest first: state, agent and their deliveries (failures in red)."""
    params = _params(state, agent, channel, label or [], limit, cursor)
    if api_url:
        if not api_key:
            fail("--api-url needs an API key: --api-key or GATEWAY_API_KEY", 2)
        page = _from_api(api_url, api_key, params)
    else:
        page = _from_ingress(ingress_url, params)
    if as_json:
        out.print_json(json.dumps(page.model_dump(mode="json")))
        return
    if not page.tasks:
        out.print("no tasks" + (" match" if len(params) > 1 else ""))
    else:
        table = Table(box=None, pad_edge=False)
        for column in ("TASK", "AGENT", "STATE", "DELIVERIES", "SUBMITTED"):
            table.add_column(column)
        for t in page.tasks:
            counts = [f"[bold red]{t.failed} failed[/]" if t.failed else "",
                      f"{t.waiting} waiting" if t.waiting else "",
                      f"[green]{t.delivered} delivered[/]" if t.delivered else ""]
            style = "bold red" if t.state.value == "failed" else ""
            table.add_row(escape(t.task_id), escape(t.agent or ""),
                          f"[{style}]{t.state.value}[/]" if style else t.state.value,
                          " ".join(c for c in counts if c) or "-", _when(t.submitted_at))
        out.print(table)
    if page.next_cursor:
        again = " ".join(f"--{k} {shlex.quote(v)}" for k, v in params
                         if k not in ("cursor", "limit"))
        out.print(f"more: gateway tasks {again} --cursor {page.next_cursor}".replace("  ", " "),
                  soft_wrap=True)
