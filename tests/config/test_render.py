"""Rendering per channel kind: built-in templates, escaping, shortening, template choice."""

from __future__ import annotations

import json

import jinja2
import pytest

from gateway.channels import ChannelPlugin, Channels, Message, MessageKind
from gateway.channels.render import Renderer, TaskView, TemplateSet
from gateway.config import parse_config
from gateway.core import ConfigError, RenderError, Subscription, Target
from tests.config.fakes import fake_plugins

NASTY = '<script>alert("x")</script> & <!channel> <https://evil.example.com|click>'


def view(kind: MessageKind = "result", output: str | None = "All good.",
         **extra: object) -> TaskView:
    fields: dict[str, object] = {
        "task_id": "t-1", "agent": "researcher", "prompt": "Summarise the report",
        "labels": {"team": "ml"}, "links": {"status": "https://gw.example.com/v1/tasks/t-1"},
        "completed_at": 1_700_000_000.0 if kind != "still_running" else None,
        "output": output if kind == "result" else None,
        "error": "model unavailable" if kind == "failure" else None,
    }
    fields.update(extra)
    return TaskView.model_validate(fields)


def channels(**templates: str) -> Channels:
    configured: dict[str, tuple[str, dict[str, object], None]] = {
        name: (name, {}, None) for name in templates}
    return Channels.from_plugins(fake_plugins(), configured)


def render(renderer: Renderer, channel: str, target: str, kind: MessageKind = "result",
           task: TaskView | None = None, template: str | None = None,
           chans: Channels | None = None, via: Target | None = None) -> Message:
    sub = Subscription(channel=channel, target=target, id="s_1", template=template,
                       source="ml-team")
    chans = chans or channels()
    deliver_to = via or sub
    return renderer.render(kind=kind, task=task or view(kind), subscription=sub,
                           target=deliver_to, channel=chans.get(deliver_to.channel),
                           message_id="m_1")


# --- email -----------------------------------------------------------------------------

def test_email_has_subject_text_and_html() -> None:
    msg = render(Renderer(), "email", "a@example.com")
    assert msg.subject == "Task t-1 finished (researcher)"
    assert msg.text.startswith("Task t-1 (researcher) finished.\n\nAll good.")
    assert "status: https://gw.example.com/v1/tasks/t-1" in msg.text
    assert msg.html is not None and "<h2>Task t-1 finished (researcher)</h2>" in msg.html
    assert (msg.id, msg.task_id, msg.subscription_id, msg.kind, msg.target) == (
        "m_1", "t-1", "s_1", "result", "a@example.com")


def test_html_in_a_result_cannot_break_the_email() -> None:
    msg = render(Renderer(), "email", "a@example.com", task=view(output=NASTY))
    assert msg.html is not None
    assert "<script>" not in msg.html and "&lt;script&gt;" in msg.html
    assert "&amp; &lt;!channel&gt;" in msg.html
    assert msg.html.count("<pre") == 1 and msg.html.rstrip().endswith("</body></html>")
    assert NASTY in msg.text  # the plain-text part is not HTML: shown as it is


@pytest.mark.parametrize(("kind", "subject", "phrase"), [
    ("result", "Task t-1 finished (researcher)", "All good."),
    ("failure", "Task t-1 failed (researcher)", "model unavailable"),
    ("still_running", "Task t-1 is still running (researcher)", "not there yet"),
])
def test_email_for_each_kind(kind: MessageKind, subject: str, phrase: str) -> None:
    msg = render(Renderer(), "email", "a@example.com", kind=kind)
    assert msg.subject == subject
    assert msg.html is not None and phrase in msg.html


def test_subject_is_one_line() -> None:
    renderer = Renderer({"t": TemplateSet(subject="{{ task.output }}")})
    msg = render(renderer, "email", "a@example.com", task=view(output="line one\nline two\r\n"),
                 template="t")
    assert msg.subject == "line one line two"


# --- slack -----------------------------------------------------------------------------

def test_slack_escapes_control_characters_in_values() -> None:
    msg = render(Renderer(), "slack", "#ml", task=view(output=NASTY))
    assert "<!channel>" not in msg.text and "<https://evil" not in msg.text
    assert "&amp; &lt;!channel&gt; &lt;https://evil.example.com|click&gt;" in msg.text
    assert msg.text.startswith(":white_check_mark: *Task t-1 finished* (researcher)")
    assert msg.text.endswith("<https://gw.example.com/v1/tasks/t-1|status>")  # a real link
    assert msg.html is None


def test_slack_blocks_carry_header_and_the_mrkdwn_text() -> None:
    msg = render(Renderer(), "slack", "#ml", task=view(output=NASTY))
    header, section = msg.data["blocks"]
    assert header == {"type": "header",
                      "text": {"type": "plain_text", "text": "Task t-1 finished (researcher)"}}
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": msg.text}}


def test_long_slack_text_is_split_into_sections_within_slacks_limit() -> None:
    output = "\n".join(f"line {i} " + "x" * 90 for i in range(100))
    msg = render(Renderer(), "slack", "#ml", task=view(output=output))
    sections = msg.data["blocks"][1:]
    assert len(sections) > 1
    assert all(len(b["text"]["text"]) <= 3000 for b in sections)
    assert "\n".join(b["text"]["text"] for b in sections) == msg.text


def test_slack_uses_the_sets_text_escaped_when_it_has_no_slack_field() -> None:
    renderer = Renderer({"t": TemplateSet(text="Done: {{ task.output }}")})
    msg = render(renderer, "slack", "#ml", task=view(output="a < b"), template="t")
    assert msg.text == "Done: a &lt; b"


def test_custom_slack_blocks_template_is_json_encoded() -> None:
    blocks = '[{"type": "section", "text": {"type": "mrkdwn", "text": {{ text }}}}]'
    renderer = Renderer({"t": TemplateSet(slack="*{{ task.output }}*", slack_blocks=blocks)})
    msg = render(renderer, "slack", "#ml", task=view(output='say "hi" <b>'), template="t")
    assert msg.text == '*say "hi" &lt;b&gt;*'
    assert msg.data["blocks"] == [{"type": "section",
                                   "text": {"type": "mrkdwn", "text": msg.text}}]


# --- sms -------------------------------------------------------------------------------

def test_sms_is_one_line_shortened_on_a_word_boundary() -> None:
    output = "The quarterly report is ready and it says revenue grew strongly"
    msg = render(Renderer(), "sms", "+15550100", task=view(output=output))
    assert msg.text == "Task t-1 done: The quarterly report is…"
    assert len(msg.text) <= 40 and msg.text.endswith("…")
    assert "\n" not in msg.text


def test_short_sms_is_left_whole() -> None:
    msg = render(Renderer(), "sms", "+15550100", task=view(output="Ready."))
    assert msg.text == "Task t-1 done: Ready."


def test_sms_for_failure_and_still_running() -> None:
    failed = render(Renderer(), "sms", "+15550100", kind="failure")
    assert failed.text == "Task t-1 failed: model unavailable"
    waiting = render(Renderer(), "sms", "+15550100", kind="still_running")
    assert waiting.text == "Task t-1 is still running; the result…"


# --- webhook ---------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "event"), [
    ("result", "task.succeeded"), ("failure", "task.failed"),
    ("still_running", "task.still_running"),
])
def test_webhook_document_is_exact(kind: MessageKind, event: str) -> None:
    msg = render(Renderer(), "webhook", "https://h.example.com/x", kind=kind,
                 task=view(kind, output=NASTY))
    assert msg.data == {
        "id": "m_1",
        "type": event,
        "task_id": "t-1",
        "subscription_id": "s_1",
        "agent": "researcher",
        "labels": {"team": "ml"},
        "output": NASTY if kind == "result" else None,
        "error": "model unavailable" if kind == "failure" else None,
        "completed_at": 1_700_000_000.0 if kind != "still_running" else None,
        "links": {"status": "https://gw.example.com/v1/tasks/t-1"},
    }
    json.dumps(msg.data)


def test_custom_webhook_template_encodes_values_as_json() -> None:
    renderer = Renderer({"t": TemplateSet(
        webhook='{"who": {{ task.agent }}, "out": {{ task.output }}, "n": {{ labels | length }},'
                ' "missing": {{ labels.nope }}}')})
    msg = render(renderer, "webhook", "https://h.example.com/x", template="t",
                 task=view(output='quote " and \\ backslash'))
    assert msg.data == {"who": "researcher", "out": 'quote " and \\ backslash', "n": 1,
                        "missing": None}


def test_webhook_template_that_is_not_json_is_a_render_error() -> None:
    renderer = Renderer({"t": TemplateSet(webhook='{"id": "{{ task.task_id }}"}')})
    with pytest.raises(RenderError, match=r"template 't' webhook: does not render valid JSON"):
        render(renderer, "webhook", "https://h.example.com/x", template="t")


def test_webhook_template_must_render_an_object() -> None:
    renderer = Renderer({"t": TemplateSet(webhook="[1, 2]")})
    with pytest.raises(RenderError, match="must render a JSON object, not list"):
        render(renderer, "webhook", "https://h.example.com/x", template="t")


# --- text, template choice, scope ------------------------------------------------------

def test_text_channel_gets_the_plain_text() -> None:
    msg = render(Renderer(), "text", "anything", kind="failure")
    assert msg.text.startswith("Task t-1 (researcher) failed: model unavailable")
    assert msg.html is None and msg.data == {}


def test_subscription_template_wins_over_channel_template_over_default() -> None:
    renderer = Renderer(
        {"sub": TemplateSet(text="from subscription"), "chan": TemplateSet(text="from channel")},
        channel_templates={"text": "chan"},
    )
    assert render(renderer, "text", "x", template="sub").text == "from subscription"
    assert render(renderer, "text", "x").text == "from channel"
    assert render(Renderer(), "text", "x").text.startswith("Task t-1")


def test_a_field_the_set_leaves_out_comes_from_the_default() -> None:
    renderer = Renderer({"t": TemplateSet(subject="Custom {{ task.task_id }}")})
    msg = render(renderer, "email", "a@example.com", template="t")
    assert msg.subject == "Custom t-1"
    assert msg.text.startswith("Task t-1 (researcher) finished.")
    assert msg.html is not None and "<h2>Custom t-1</h2>" in msg.html


def test_custom_text_without_html_sends_a_text_only_email() -> None:
    renderer = Renderer({"t": TemplateSet(text="Just {{ task.output }}")})
    msg = render(renderer, "email", "a@example.com", template="t")
    assert (msg.text, msg.html) == ("Just All good.", None)


def test_a_template_name_gone_from_the_configuration_falls_back() -> None:
    msg = render(Renderer(), "text", "x", template="removed-since-routing")
    assert msg.text.startswith("Task t-1 (researcher) finished.")


def test_scope_names_the_fallback_channel_and_redacts_its_target() -> None:
    renderer = Renderer({"t": TemplateSet(
        text="{{ subscription.channel }} {{ subscription.target }} {{ subscription.fallback }} "
             "{{ subscription.source }} {{ subscription.id }} {{ channel }} {{ outcome }} "
             "{{ event }} {{ kind }} {{ message_id }} {{ task.completed_at | datetime }}")})
    via = Target(channel="webhook", target="https://h.example.com/x?token=secret")
    msg = render(renderer, "email", "a@example.com", template="t", via=via)
    assert msg.text == ("webhook https://h.example.com/x True ml-team s_1 webhook succeeded "
                        "succeeded result m_1 2023-11-14 22:13:20 UTC")
    assert msg.target == "https://h.example.com/x?token=secret"


def test_max_text_length_applies_to_custom_templates_too() -> None:
    renderer = Renderer({"t": TemplateSet(sms="{{ task.prompt }} " * 10)})
    msg = render(renderer, "sms", "+15550100", template="t")
    assert len(msg.text) <= 40 and msg.text.endswith("…")


# --- sandbox and errors ----------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ task.__class__ }}",
    "{{ labels.update({'x': 1}) }}",
    "{{ cycler.__init__.__globals__ }}",
])
def test_sandbox_refuses_unsafe_templates(source: str) -> None:
    renderer = Renderer({"t": TemplateSet(text=source)})
    with pytest.raises(RenderError, match=r"template 't' text: SecurityError"):
        render(renderer, "text", "x", template="t")


def test_a_failing_template_is_a_render_error_naming_it() -> None:
    renderer = Renderer({"t": TemplateSet(text="{{ task.error.upper() }}")})
    with pytest.raises(RenderError, match=r"template 't' text: UndefinedError"):
        render(renderer, "text", "x", template="t")


def test_compile_errors_are_reported_when_the_renderer_is_built() -> None:
    with pytest.raises(ConfigError) as caught:
        Renderer({"a": TemplateSet(subject="{{ x }", html="ok"),
                  "b": TemplateSet(text="line\n{% if x %}\n")})
    assert caught.value.errors == [
        "template 'a' subject line 1: syntax error: unexpected '}'",
        "template 'b' text line 2: syntax error: Unexpected end of template. Jinja was "
        "looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block "
        "that needs to be closed is 'if'.",
    ]


def test_templates_are_compiled_once_not_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    renderer = Renderer({"t": TemplateSet(text="{{ task.output }}")})

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("a template was compiled while rendering")

    monkeypatch.setattr(jinja2.Environment, "from_string", no_compiling)
    monkeypatch.setattr(jinja2.Environment, "compile", no_compiling)
    kinds: list[MessageKind] = ["result", "failure", "still_running"]
    for channel, target in [("email", "a@example.com"), ("slack", "#ml"),
                            ("sms", "+15550100"), ("webhook", "https://h.example.com/x")]:
        for kind in kinds:
            render(renderer, channel, target, kind=kind)
            render(renderer, channel, target, kind=kind, template="t")


def test_renderer_from_config(plugins: dict[str, ChannelPlugin]) -> None:
    config = parse_config(
        "channels:\n  text:\n    template: short\n"
        "templates:\n  short:\n    text: 'short: {{ task.output }}'\n",
        plugins=plugins, env={},
    )
    renderer = Renderer.from_config(config)
    assert renderer.template_names == ["short"]
    assert render(renderer, "text", "x", chans=channels(text="short")).text == "short: All good."


def test_view_is_what_templates_see() -> None:
    assert set(TaskView.model_fields) >= {"task_id", "agent", "prompt", "labels", "output",
                                         "error", "completed_at", "links"}
    assert fake_plugins()["sms"].cls.max_text_length == 40
