"""Live progress of a task for ``submit --wait`` and ``status --follow``.

The task's status is polled at a bounded interval; each subscriber's phase (waiting →
delivering → retrying → delivered/failed, with the attempt number and when the next attempt
is due) is shown as it changes: a live table on a terminal, one plain line per change
otherwise (CI logs, pipes). The delivery table keeps to the console's width (80 columns
included) by printing long errors under it rather than in a narrow column.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from gateway.cli._mask import shown_target
from gateway.core import DeliveryReceipt, DeliveryState, TaskState, TaskStatus, delivery_state_text

__all__ = ["delivery_table", "finished", "follow", "phase"]

MIN_INTERVAL, MAX_INTERVAL = 0.1, 5.0
_DONE = (TaskState.SUCCEEDED, TaskState.FAILED)
_STYLE = {"delivered": "green", "delivered-by-fallback": "green", "failed": "red",
          "retrying": "yellow", "delivering": "cyan", "cancelled": "dim", "skipped": "dim"}


def finished(s: TaskStatus) -> bool:
    """The task has an outcome and every delivery is settled."""
    return s.state in _DONE and all(d.state.final for d in s.deliveries)


def phase(d: DeliveryReceipt, task: TaskState, now: float | None = None) -> str:
    """What is happening to one subscriber, in a few words."""
    state = d.state
    if state is DeliveryState.WAITING:
        if task in _DONE:
            return f"delivering (attempt {d.attempts + 1})"
        return "waiting for the result"
    if state is DeliveryState.DELIVERING:
        return f"delivering (attempt {d.attempts + 1})"
    if state is DeliveryState.RETRYING:
        text = f"retrying: attempt {d.attempts} failed"
        if d.next_attempt_at is not None:
            left = d.next_attempt_at - (time.time() if now is None else now)
            text += (f", attempt {d.attempts + 1} in {left:.0f}s" if left >= 0.5
                     else f", attempt {d.attempts + 1} now")
        return text
    tries = f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}"
    if state is DeliveryState.DELIVERED_BY_FALLBACK:
        return f"{state.value} ({d.channel_used}, {tries})"
    if state in (DeliveryState.DELIVERED, DeliveryState.FAILED):
        return f"{state.value} ({tries})"
    return state.value


def _who(d: DeliveryReceipt, show_targets: bool) -> str:
    return f"{d.channel}:{shown_target(d.address or d.target, show_targets)}"


def _key_phase(p: str) -> str:
    """A phase without its countdown: a line is printed when this changes."""
    return p.split(", attempt", 1)[0] if p.startswith("retrying") else p


def delivery_table(s: TaskStatus, *, show_targets: bool = False,
                   live: bool = False) -> RenderableType:
    """The deliveries as a table that fits the console; errors listed under it."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("subscription", no_wrap=True, overflow="ellipsis", max_width=18)
    table.add_column("subscriber", overflow="fold", ratio=1)
    table.add_column("state", overflow="fold", ratio=1)
    notes: list[RenderableType] = []
    for d in s.deliveries:
        state = phase(d, s.state) if live else d.state.value
        if not live and d.state.final and d.attempts:
            history = delivery_state_text(d)  # earlier attempts' errors, if any
            state = history if history != d.state.value else phase(d, s.state)
        style = _STYLE.get(d.state.value, "")
        table.add_row(d.subscription_id, escape(_who(d, show_targets)),
                      f"[{style}]{escape(state)}[/]" if style else escape(state))
        if d.last_error:
            note = Text()
            note.append(f"{d.subscription_id}: ", style="bold")
            error = d.last_error if show_targets else d.last_error.replace(
                d.target, shown_target(d.target, show_targets))
            note.append(f"last error: {error}")
            notes.append(Padding(note, (0, 0, 0, 2)))
    return Group(table, *notes) if notes else table


def follow(status_of: Callable[[], TaskStatus], console: Console, *, timeout: float,
           interval: float = 0.5, show_targets: bool = False,
           unknown_ends: bool = False) -> TaskStatus:
    """Poll until the task finished and every delivery settled, or ``timeout`` seconds;
    show each change. Returns the last status seen. ``unknown_ends``: a task nobody submitted
    nor subscribed to ends it at once (not for a task just submitted: it is on its way)."""
    interval = min(max(interval, MIN_INTERVAL), MAX_INTERVAL)
    deadline = time.monotonic() + max(timeout, 0.0)
    status = status_of()
    if unknown_ends and status.state is TaskState.UNKNOWN and not status.deliveries:
        return status
    if console.is_terminal:
        return _follow_live(status, status_of, console, deadline, interval, show_targets)
    seen: dict[str, str] = {}
    while True:
        _print_changes(status, console, seen, show_targets)
        if finished(status) or time.monotonic() >= deadline:
            return status
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))
        status = status_of()


def _print_changes(s: TaskStatus, console: Console, seen: dict[str, str],
                   show_targets: bool) -> None:
    if seen.get("") != s.state.value:
        seen[""] = s.state.value
        console.print(f"task {escape(s.task_id)}: {s.state.value}", soft_wrap=True)
    for d in s.deliveries:
        p = phase(d, s.state)
        if seen.get(d.subscription_id) != _key_phase(p):
            seen[d.subscription_id] = _key_phase(p)
            console.print(f"  {escape(_who(d, show_targets))}: {escape(p)}", soft_wrap=True)


def _follow_live(status: TaskStatus, status_of: Callable[[], TaskStatus], console: Console,
                 deadline: float, interval: float, show_targets: bool) -> TaskStatus:

    def view(s: TaskStatus) -> RenderableType:
        head = Text.from_markup(f"[bold]task[/] {escape(s.task_id)}  [bold]state[/] "
                                f"{s.state.value}")
        if not s.deliveries:
            return Group(head, Text("no subscribers yet"))
        return Group(head, delivery_table(s, show_targets=show_targets, live=True))

    with Live(view(status), console=console, transient=True, auto_refresh=False) as live:
        while not finished(status) and time.monotonic() < deadline:
            time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))
            status = status_of()
            live.update(view(status), refresh=True)
    return status
