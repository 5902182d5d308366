"""A plugin may bring its own message format; an unknown format is a configuration error.

A plugin names a template kind of its own and declares its fields with default templates
(``template_fields``); each is rendered into the message's ``data``. A kind that is neither
built in nor declared is reported when the configuration is checked, on one line with the
file and line, naming the known kinds, instead of silently rendering plain text.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from gateway.channels import (
    ChannelPlugin,
    Channels,
    Message,
    MessageKind,
    Renderer,
    TaskView,
    format_problem,
)
from gateway.config import parse_config
from gateway.core import ConfigError, RenderError, Subscription
from tests.config.fakes import _Fake, fake_plugins

KNOWN = "known kinds: email, slack, sms, webhook, text (or declare its own in template_fields)"


class Pager(_Fake):
    """A third-party pager: one short summary line and a severity, its own format."""

    name: ClassVar[str] = "pager"
    template_kind: ClassVar[str] = "pager"
    template_fields: ClassVar[dict[str, str]] = {
        "summary": "[{{ subscription.source }}] {{ subject }}",
        "severity": '{% if kind == "failure" %}critical{% else %}info{% endif %}',
        "body": "{{ text | shorten(30) }}",
    }


class Telex(_Fake):
    """A plugin asking for a format nobody declared (a typo, or an older gateway)."""

    name: ClassVar[str] = "telex"
    template_kind: ClassVar[str] = "telex"


class Clashing(_Fake):
    name: ClassVar[str] = "clashing"
    template_kind: ClassVar[str] = "clashing"
    template_fields: ClassVar[dict[str, str]] = {"subject": "{{ task.task_id }}"}


class Broken(_Fake):
    name: ClassVar[str] = "broken"
    template_kind: ClassVar[str] = "broken"
    template_fields: ClassVar[dict[str, str]] = {"line": "{{ task.task_id "}


class MixedWithWebhook(_Fake):
    name: ClassVar[str] = "mixed"
    template_kind: ClassVar[str] = "webhook"
    template_fields: ClassVar[dict[str, str]] = {"line": "{{ task.task_id }}"}


def plugins(*extra: type[_Fake]) -> dict[str, ChannelPlugin]:
    found = fake_plugins()
    for cls in extra:
        found[cls.name] = ChannelPlugin(cls.name, cls, "gateway-channel-" + cls.name, "1.0")
    return found


def view(kind: MessageKind) -> TaskView:
    return TaskView(task_id="t-7", agent="researcher", prompt="Summarise the report",
                    output="All good, and a long explanation follows." if kind == "result"
                    else None, error="model unavailable" if kind == "failure" else None)


def render(channel: str, kind: MessageKind, *extra: type[_Fake],
           renderer: Renderer | None = None, template: str | None = None) -> Message:
    chans = Channels.from_plugins(plugins(*extra))
    sub = Subscription(channel=channel, target="ops", id="s_1", source="on-call",
                       template=template)
    return (renderer or Renderer()).render(kind=kind, task=view(kind), subscription=sub, target=sub,
                             channel=chans.get(channel), message_id="m_1")


def test_a_plugin_with_its_own_format_gets_its_fields_rendered_into_the_message() -> None:
    message = render("pager", "result", Pager)
    assert message.data == {
        "summary": "[on-call] Task t-7 finished (researcher)",
        "severity": "info",
        "body": "Task t-7 (researcher)…",
    }
    assert message.subject == "Task t-7 finished (researcher)"
    assert message.text.startswith("Task t-7 (researcher) finished.")
    failed = render("pager", "failure", Pager)
    assert failed.data["severity"] == "critical"
    assert failed.data["summary"] == "[on-call] Task t-7 failed (researcher)"


def test_a_channel_of_a_plugin_format_loads_and_its_format_has_no_problem() -> None:
    config = parse_config("channels:\n  oncall:\n    plugin: pager\n", plugins=plugins(Pager),
                          source="gateway.yaml", env={})
    assert config.channels["oncall"].plugin == "pager"
    assert format_problem(Pager) is None


def test_a_template_set_overrides_a_plugin_field_and_keeps_the_other_defaults() -> None:
    config = parse_config(
        "templates:\n  terse:\n    plugin_fields:\n"
        "      summary: '{{ task.task_id }} {{ outcome }}'\n",
        plugins=plugins(Pager), source="gateway.yaml", env={})
    message = render("pager", "failure", Pager, renderer=Renderer.from_config(config),
                     template="terse")
    assert message.data == {"summary": "t-7 failed", "severity": "critical",
                            "body": "Task t-7 (researcher) failed:…"}


def test_a_plugin_field_no_installed_plugin_declares_is_a_config_error() -> None:
    text = ("templates:\n"
            "  terse:\n"
            "    plugin_fields:\n"
            "      sumary: '{{ task.task_id }}'\n"
            "      severity: '{{ task.task_id '\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins(Pager), source="gateway.yaml", env={})
    assert caught.value.errors == [
        "gateway.yaml:4 templates.terse.plugin_fields.sumary: no installed plugin declares the "
        "template field 'sumary'; declared: body, severity, summary",
        "gateway.yaml:5 templates.terse.plugin_fields.severity: syntax error: unexpected end "
        "of template, expected 'end of print statement'. (line 1 of the template)",
    ]


def test_an_unknown_template_kind_is_one_config_error_with_file_line_and_known_kinds() -> None:
    text = ("agents:\n  default: {}\n"
            "channels:\n"
            "  printer:\n"
            "    plugin: telex\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins(Telex), source="gateway.yaml", env={})
    assert caught.value.errors == [
        "gateway.yaml:5 channels.printer.plugin: plugin 'telex' asks for template kind "
        f"'telex', which is unknown; {KNOWN}"]


def test_a_plugin_used_by_its_name_in_a_subscription_is_checked_once() -> None:
    text = ("subscriptions:\n"
            "  - name: ops\n"
            "    notify: ['telex:desk-1']\n"
            "  - name: night\n"
            "    notify: ['telex:desk-2']\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins(Telex), source="gateway.yaml", env={})
    assert len(caught.value.errors) == 1
    assert caught.value.errors[0].startswith("gateway.yaml:3 subscriptions[0].notify[0]: "
                                             "plugin 'telex' asks for template kind 'telex'")


@pytest.mark.parametrize(("cls", "message"), [
    (Clashing, "plugin 'clashing' template field 'subject': use lower-case letters, digits "
               "and '_', not a built-in field (subject, text, html, slack, slack_blocks, sms, "
               "webhook)"),
    (Broken, "plugin 'broken' template field 'line' does not compile: unexpected end of "
             "template, expected 'end of print statement'."),
    (MixedWithWebhook, "plugin 'mixed' declares template_fields for the built-in kind "
                       "'webhook': give its own format a template_kind of its own"),
])
def test_a_bad_declared_format_is_reported_at_the_channel(cls: type[_Fake], message: str) -> None:
    text = f"channels:\n  out:\n    plugin: {cls.name}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins(cls), source="gateway.yaml", env={})
    assert caught.value.errors == [f"gateway.yaml:3 channels.out.plugin: {message}"]


def test_an_unknown_kind_never_falls_back_to_plain_text_when_rendering() -> None:
    with pytest.raises(RenderError) as caught:
        render("telex", "result", Telex)
    assert str(caught.value) == ("plugin 'telex' asks for template kind 'telex', which is "
                                 f"unknown; {KNOWN}")


def test_the_built_in_plugins_formats_have_no_problem() -> None:
    assert {name: format_problem(p.cls) for name, p in fake_plugins().items()} == {
        name: None for name in fake_plugins()}
