"""The local mailbox of ``gateway up``: real SMTP in, ``.eml`` files, ``gateway mail`` out."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path

from typer.testing import CliRunner

from gateway.channels import discover_plugins
from gateway.cli._mail import MailCatcher, local_mail_endpoints
from gateway.cli.app import app
from gateway.config import load_config
from gateway.durable import runtime_for
from gateway.local import free_port
from tests.support.process import wait_until

runner = CliRunner()


def _send(port: int, to: str, subject: str, text: str) -> None:
    msg = EmailMessage()
    msg["From"] = "gateway@example.com"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)


def test_caught_mail_is_kept_as_eml_and_listed_and_shown(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    catcher = MailCatcher(mail_dir, "127.0.0.1", free_port())
    catcher.start()
    try:
        _send(catcher.port, "ann@example.com", "Task t-1 finished", "The poem is ready.")
        _send(catcher.port, "bob@example.com", "Task t-2 failed", "It broke.")
        assert wait_until(lambda: len(list(mail_dir.glob("*.eml"))) == 2, 10)
    finally:
        catcher.stop()
    assert sorted(p.name for p in mail_dir.iterdir()) == ["0001.eml", "0002.eml"]

    r = runner.invoke(app, ["mail", "--mail-dir", str(mail_dir)])
    assert r.exit_code == 0, r.output
    assert "ann@example.com" in r.output and "Task t-2 failed" in r.output
    assert "2 messages" in r.output

    r = runner.invoke(app, ["mail", "show", "1", "--mail-dir", str(mail_dir)])
    assert r.exit_code == 0, r.output
    assert "Subject: Task t-1 finished" in r.output and "The poem is ready." in r.output
    assert "It broke." not in r.output

    r = runner.invoke(app, ["mail", "show", "7", "--mail-dir", str(mail_dir)])
    assert r.exit_code == 1
    assert "no message 7" in r.output and len(r.output.strip().splitlines()) == 1


def test_an_empty_mailbox_says_where_mail_would_land(tmp_path: Path) -> None:
    r = runner.invoke(app, ["mail", "--mail-dir", str(tmp_path / "none")])
    assert r.exit_code == 0
    assert "no mail in" in r.output


def test_only_mail_to_this_machine_without_tls_gets_a_local_mailbox(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("""
channels:
  email: {plugin: email, options: {host: localhost, port: 2525, tls: none, from_addr: a@b.io}}
  team-mail: {plugin: email, options: {host: 127.0.0.1, port: 2600, tls: none,
                                       from_addr: a@b.io}}
  real-mail: {plugin: email, options: {host: smtp.example.com, port: 2700, tls: none,
                                       from_addr: a@b.io}}
  tls-mail: {plugin: email, options: {host: localhost, port: 2800, tls: starttls,
                                      from_addr: a@b.io}}
""")
    plugins = discover_plugins()
    runtime = runtime_for(load_config(config, plugins=plugins), plugins)
    assert local_mail_endpoints(runtime) == [("127.0.0.1", 2525), ("127.0.0.1", 2600)]
