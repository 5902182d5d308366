"""The local mailbox of ``gateway up``, and ``gateway mail`` to read it.

When the configuration sends mail to this machine without TLS (the shipped
``config/gateway.yaml`` mails ``localhost:2525``), ``gateway up`` listens there with an SMTP
catcher and keeps each message as an ``.eml`` file in the mail directory (``.gateway/mail``):
local development then has a mailbox a person can read, with ``gateway mail`` (a list) and
``gateway mail show N`` (one message), or with any mail program.
"""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.local import Mailbox

if TYPE_CHECKING:
    from gateway.durable import Runtime

__all__ = ["DEFAULT_MAIL_DIR", "MailCatcher", "MailDir", "local_mail_endpoints", "mail_app",
           "start_mailboxes"]

DEFAULT_MAIL_DIR = Path(".gateway/mail")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}

MailDir = Annotated[Path, typer.Option(
    "--mail-dir", envvar="GATEWAY_MAIL_DIR",
    help="Where `gateway up` keeps the mail of the local mailbox.")]


def local_mail_endpoints(runtime: Runtime) -> list[tuple[str, int]]:
    """(host, port) of every configured email channel that mails this machine without TLS
    on an unprivileged port: where a local mailbox can listen."""
    found: list[tuple[str, int]] = []
    for name in runtime.channels.names:
        inst = runtime.channels.get(name)
        if inst.plugin.cls.name != "email":
            continue
        options = inst.effective_options({})
        host, port, tls = (getattr(options, k, None) for k in ("host", "port", "tls"))
        if (isinstance(host, str) and host in _LOCAL_HOSTS and isinstance(port, int)
                and port >= 1024 and tls == "none" and ("127.0.0.1", port) not in found):
            found.append(("127.0.0.1", port))
    return found


class MailCatcher(Mailbox):
    """An SMTP server on loopback that writes each message to ``directory`` as ``NNNN.eml``."""

    def __init__(self, directory: Path, host: str, port: int) -> None:
        super().__init__(host, port)
        self.directory = directory
        self._lock = threading.Lock()

    def add(self, item: Any) -> None:
        assert isinstance(item, EmailMessage)
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{_last_number(self.directory) + 1:04d}.eml"
            partial = path.with_suffix(".part")
            partial.write_bytes(item.as_bytes())
            partial.replace(path)
        if self.on_item is not None:
            self.on_item(path)


def _last_number(directory: Path) -> int:
    numbers = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
    return max(numbers, default=0)


@dataclass(frozen=True)
class _Mail:
    number: int
    path: Path
    message: EmailMessage


def _read(directory: Path) -> list[_Mail]:
    mails = []
    for path in sorted(directory.glob("*.eml")):
        if path.stem.isdigit():
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            mails.append(_Mail(int(path.stem), path, msg))
    return sorted(mails, key=lambda m: m.number)


mail_app = typer.Typer(
    help="Read the local mailbox of `gateway up`: list the mail, or show one message.",
    invoke_without_command=True, no_args_is_help=False)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)


@mail_app.callback()
def mail_list(ctx: typer.Context, mail_dir: MailDir = DEFAULT_MAIL_DIR) -> None:
    """List the messages the local mailbox of `gateway up` received."""
    if ctx.invoked_subcommand is not None:
        return
    mails = _read(mail_dir)
    if not mails:
        _out.print(f"no mail in {mail_dir} yet (`gateway up` keeps the mail it catches there)")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("received", no_wrap=True)
    table.add_column("to", overflow="fold", ratio=1)
    table.add_column("subject", overflow="fold", ratio=2)
    for m in mails:
        table.add_row(str(m.number), _date(m), escape(str(m.message["X-Envelope-To"] or
                                                          m.message["To"] or "")),
                      escape(str(m.message["Subject"] or "")))
    _out.print(table)
    _out.print(f"{len(mails)} message{'s' if len(mails) != 1 else ''} in {mail_dir}; "
               "`gateway mail show N` shows one")


def _date(m: _Mail) -> str:
    date = m.message["Date"]
    try:
        return date.datetime.strftime("%Y-%m-%d %H:%M:%S") if date else ""
    except (AttributeError, ValueError):
        return str(date)


@mail_app.command("show")
def mail_show(
    number: Annotated[int, typer.Argument(help="The message's number in `gateway mail`.")],
    mail_dir: MailDir = DEFAULT_MAIL_DIR,
) -> None:
    """Show one message: its headers and text."""
    found = [m for m in _read(mail_dir) if m.number == number]
    if not found:
        _err.print(f"[bold red]error:[/] no message {number} in {escape(str(mail_dir))}; "
                   "`gateway mail` lists them", soft_wrap=True)
        raise typer.Exit(1)
    msg = found[0].message
    for header in ("From", "To", "Subject", "Date"):
        _out.print(f"[bold]{header}:[/] {escape(str(msg[header] or ''))}", soft_wrap=True)
    _out.print(f"[bold]File:[/] {escape(str(found[0].path))}", soft_wrap=True)
    _out.print()
    body = msg.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    _out.print(str(text).strip(), markup=False, highlight=False, soft_wrap=True)


def start_mailboxes(runtime: Runtime, directory: Path, say: Console) -> list[MailCatcher]:
    """Start a catcher where the configuration mails this machine (unless something already
    listens there), and say where the mail lands."""
    from gateway.local import port_in_use

    started: list[MailCatcher] = []
    for host, port in local_mail_endpoints(runtime):
        if port_in_use(host, port):
            say.print(f"local mailbox     localhost:{port} is taken: mail goes to what "
                      "listens there", soft_wrap=True)
            continue
        catcher = MailCatcher(directory, host, port)
        catcher.start()
        started.append(catcher)
        say.print(f"local mailbox     localhost:{port}, mail kept in {directory} "
                  "(`gateway mail` lists it)", soft_wrap=True)
    return started
