"""Template sets, their sandboxed Jinja2 environments, and the built-in defaults.

A template set names one template per *field*; which fields a channel uses depends on its
``template_kind`` (a built-in one, or a plugin's own: :mod:`gateway.channels._formats`):

=============  =================================================================
field          used by
=============  =================================================================
subject        every kind (email subject, Slack header, the message's subject)
text           email (plain part), webhook and text; Slack and SMS fall back to it
html           email (HTML part; autoescaped)
slack          Slack mrkdwn (``&``, ``<``, ``>`` in values are escaped)
slack_blocks   Slack blocks, a JSON template (a list, or an object with ``blocks``)
sms            SMS (one short text, shortened to the channel's limit)
webhook        webhook JSON document (an object)
plugin_fields  a plugin's own format: field -> template (plain text), overriding
               the defaults the plugin declares (``Channel.template_fields``)
=============  =================================================================

Each field is rendered in an environment fitted to its output: ``html`` autoescapes HTML,
``slack`` escapes Slack's control characters, and the JSON fields encode every ``{{ value }}``
as JSON (write ``"id": {{ task.task_id }}``, without quotes), so no value can break out of
its place in the output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from jinja2 import ChainableUndefined, Template, TemplateError, TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

from gateway.core.template_limits import LimitedSandbox
from gateway.core.text import shorten

__all__ = [
    "DEFAULT_TEMPLATES",
    "FIELDS",
    "TOO_DEEP",
    "CompiledSet",
    "SlackText",
    "TemplateProblem",
    "TemplateSet",
    "compile_set",
    "slack_escape",
]

EnvName = Literal["plain", "html", "slack", "json"]

#: the problem of a template whose expressions or blocks nest too deeply to compile
TOO_DEEP = "nested too deeply to compile; split it up"

#: the environment each field is rendered in
FIELDS: dict[str, EnvName] = {
    "subject": "plain",
    "text": "plain",
    "html": "html",
    "slack": "slack",
    "slack_blocks": "json",
    "sms": "plain",
    "webhook": "json",
}


class TemplateSet(BaseModel):
    """One named set of templates; a field left out falls back to the built-in default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str | None = None
    text: str | None = None
    html: str | None = None
    slack: str | None = None
    slack_blocks: str | None = None
    sms: str | None = None
    webhook: str | None = None
    #: the fields of plugins' own formats (field -> template, plain text), overriding the
    #: defaults the plugins declare (``Channel.template_fields``)
    plugin_fields: dict[str, str] = Field(default_factory=dict)


class SlackText(str):
    """Text already in Slack mrkdwn: not escaped again when a Slack template prints it."""

    __slots__ = ()


_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def slack_escape(value: object) -> SlackText:
    """Escape Slack's control characters so a value cannot form links or mentions."""
    if isinstance(value, SlackText):
        return value
    return SlackText(str(value).translate(_SLACK_ESCAPES))


def _slack_link(url: object, label: object = None) -> SlackText:
    href = re.sub(r"[<>|\s]", "", str(url)).replace("&", "&amp;")
    if label is None or isinstance(label, Undefined):
        return SlackText(f"<{href}>")
    return SlackText(f"<{href}|{slack_escape(label)}>")


def _datetime(value: object) -> str:
    """A POSIX timestamp as ``2025-01-02 03:04:05 UTC`` (empty for none)."""
    if value is None or isinstance(value, Undefined):
        return ""
    if not isinstance(value, int | float):
        return str(value)
    return datetime.fromtimestamp(float(value), tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shorten(value: object, limit: int = 160) -> str:
    return shorten("" if value is None or isinstance(value, Undefined) else str(value), limit)


def _plain_finalize(value: object) -> object:
    return "" if value is None else value


def _slack_finalize(value: object) -> object:
    if value is None or isinstance(value, Undefined):
        return ""
    return slack_escape(value)


def _json_finalize(value: object) -> str:
    if isinstance(value, Undefined):
        return "null"
    return json.dumps(value, ensure_ascii=False)


class _Sandbox(LimitedSandbox):
    """The immutable sandbox with resource limits (:mod:`gateway.core.template_limits`), where
    touching an unsafe attribute is an error at once (the stock sandbox renders it as empty
    text, which hides the mistake)."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )


def _environment(name: EnvName) -> ImmutableSandboxedEnvironment:
    finalize: Callable[[object], object] = {
        "plain": _plain_finalize,
        "html": _plain_finalize,
        "slack": _slack_finalize,
        "json": _json_finalize,
    }[name]
    env = _Sandbox(
        autoescape=name == "html",
        undefined=ChainableUndefined,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        datetime=_datetime, shorten=_shorten, slack_escape=slack_escape, slack_link=_slack_link
    )
    return env


_ENVIRONMENTS: dict[EnvName, ImmutableSandboxedEnvironment] = {}


def environment(name: EnvName) -> ImmutableSandboxedEnvironment:
    """The shared (stateless, sandboxed) environment for one kind of output."""
    env = _ENVIRONMENTS.get(name)
    if env is None:
        env = _ENVIRONMENTS[name] = _environment(name)
    return env


@dataclass(frozen=True)
class TemplateProblem:
    """A template that does not compile (or render on a sample task)."""

    template: str
    field: str
    #: line inside the template, 1-based, when known
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f" line {self.line}" if self.line else ""
        return f"template {self.template!r} {self.field}{where}: {self.message}"


@dataclass(frozen=True)
class CompiledSet:
    """The compiled fields of one template set; ``text`` is compiled for Slack too."""

    name: str
    fields: Mapping[str, Template]
    slack_text: Template | None
    #: plugins' own fields (see :attr:`TemplateSet.plugin_fields`)
    plugin_fields: Mapping[str, Template] = field(default_factory=dict)

    def get(self, field: str) -> Template | None:
        return self.fields.get(field)


def compile_set(name: str, templates: TemplateSet) -> tuple[CompiledSet, list[TemplateProblem]]:
    """Compile every field of a set; a syntax error becomes a problem naming field and line."""
    compiled: dict[str, Template] = {}
    own: dict[str, Template] = {}
    problems: list[TemplateProblem] = []
    slack_text: Template | None = None
    sources: list[tuple[str, EnvName, str | None]] = [
        (key, env_name, getattr(templates, key)) for key, env_name in FIELDS.items()]
    sources += [(f"plugin_fields.{key}", "plain", source)
                for key, source in templates.plugin_fields.items()]
    for key, env_name, source in sources:
        if source is None:
            continue
        try:
            template = environment(env_name).from_string(source)
            if key.startswith("plugin_fields."):
                own[key.removeprefix("plugin_fields.")] = template
                continue
            compiled[key] = template
            if key == "text":
                slack_text = environment("slack").from_string(source)
        except TemplateSyntaxError as exc:
            message = f"syntax error: {exc.message}"
            problems.append(TemplateProblem(name, key, exc.lineno, message))
        except TemplateError as exc:
            problems.append(TemplateProblem(name, key, None, str(exc)))
        except RecursionError:
            problems.append(TemplateProblem(name, key, None, TOO_DEEP))
    return CompiledSet(name, compiled, slack_text, own), problems


_RESULT_LINE = "Task {{ task.task_id }} ({{ task.agent }})"

DEFAULT_TEMPLATES = TemplateSet(
    subject=(
        '{% if kind == "result" %}Task {{ task.task_id }} finished'
        '{% elif kind == "failure" %}Task {{ task.task_id }} failed'
        "{% else %}Task {{ task.task_id }} is still running{% endif %}"
        " ({{ task.agent }})"
    ),
    text=(
        '{% if kind == "result" %}\n'
        f"{_RESULT_LINE} finished.\n\n{{{{ task.output }}}}\n"
        '{% elif kind == "failure" %}\n'
        f"{_RESULT_LINE} failed: {{{{ task.error or \"unknown error\" }}}}\n"
        "{% else %}\n"
        f"{_RESULT_LINE} is still running. You will get the result when it is ready.\n"
        "{% endif %}\n"
        "\nPrompt: {{ task.prompt | truncate(300) }}\n"
        "{% for name, url in links | dictsort %}\n"
        "{{ name }}: {{ url }}\n"
        "{% endfor %}\n"
    ),
    html=(
        '<!doctype html>\n<html><body style="font-family: sans-serif">\n'
        "<h2>{{ subject }}</h2>\n"
        '{% if kind == "result" %}\n'
        '<pre style="white-space: pre-wrap; font-family: inherit">{{ task.output }}</pre>\n'
        '{% elif kind == "failure" %}\n'
        "<p>The agent could not finish: <code>{{ task.error or \"unknown error\" }}</code></p>\n"
        "{% else %}\n"
        "<p>The result is not there yet; you will get it when it is ready.</p>\n"
        "{% endif %}\n"
        '<p style="color: #666">Prompt: {{ task.prompt | truncate(300) }}</p>\n'
        "{% if links %}\n<ul>\n"
        '{% for name, url in links | dictsort %}\n<li><a href="{{ url }}">{{ name }}</a></li>\n'
        "{% endfor %}\n</ul>\n{% endif %}\n"
        "</body></html>\n"
    ),
    slack=(
        '{% if kind == "result" %}\n'
        ":white_check_mark: *Task {{ task.task_id }} finished* ({{ task.agent }})\n"
        "{{ task.output }}\n"
        '{% elif kind == "failure" %}\n'
        ":x: *Task {{ task.task_id }} failed* ({{ task.agent }})\n"
        "{{ task.error or \"unknown error\" }}\n"
        "{% else %}\n"
        ":hourglass_flowing_sand: *Task {{ task.task_id }} is still running* ({{ task.agent }})\n"
        "You will get the result here when it is ready.\n"
        "{% endif %}\n"
        "{% for name, url in links | dictsort %}\n"
        "{{ url | slack_link(name) }}\n"
        "{% endfor %}\n"
    ),
    sms=(
        '{% if kind == "result" %}Task {{ task.task_id }} done: {{ task.output }}'
        '{% elif kind == "failure" %}Task {{ task.task_id }} failed: '
        '{{ task.error or "unknown error" }}'
        "{% else %}Task {{ task.task_id }} is still running; the result will follow."
        "{% endif %}"
    ),
    webhook=(
        "{\n"
        '  "id": {{ message_id }},\n'
        '  "type": {{ "task." ~ event }},\n'
        '  "task_id": {{ task.task_id }},\n'
        '  "subscription_id": {{ subscription.id }},\n'
        '  "agent": {{ task.agent }},\n'
        '  "labels": {{ labels }},\n'
        '  "output": {{ task.output }},\n'
        '  "error": {{ task.error }},\n'
        '  "completed_at": {{ task.completed_at }},\n'
        '  "links": {{ links }}\n'
        "}\n"
    ),
)

