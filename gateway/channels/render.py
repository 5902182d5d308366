"""Rendering: turns a task's outcome into the message one channel sends.

Templates are sandboxed Jinja2 (:mod:`gateway.core.templates` lists the fields and how each is
escaped), compiled once when the :class:`Renderer` is built. Which template set a message
uses: the subscription's ``template``, else the template configured for the channel, else
the built-in default; a field the chosen set leaves out comes from the default.

What a template sees:

* ``task``: ``task_id``, ``agent``, ``prompt``, ``labels``, ``output``, ``error``,
  ``completed_at`` (POSIX seconds; ``{{ task.completed_at | datetime }}`` formats it),
  ``submitted_at``, ``model``;
* ``kind`` (``result``, ``failure``, ``still_running``), ``outcome`` (``succeeded``,
  ``failed``, ``timed_out``) and ``event`` (``succeeded``, ``failed``, ``still_running``);
* ``labels`` and ``links`` (name -> URL, e.g. ``status``);
* ``subscription``: ``id``, ``source`` (standing subscription name), ``channel`` and
  ``target`` (redacted) of this delivery, ``fallback`` (true on a fallback channel);
* ``message_id``, ``channel`` (the channel's name) and, after the subject is rendered,
  ``subject``; the ``slack_blocks`` template also sees ``text``, the rendered mrkdwn.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jinja2 import Template, TemplateError
from pydantic import BaseModel, ConfigDict, Field

from gateway.channels._base import Message, MessageKind
from gateway.channels._formats import BUILTIN_KINDS, render_own_fields
from gateway.channels._registry import ChannelInstance
from gateway.core import (
    ConfigError,
    Outcome,
    RenderError,
    Subscription,
    Target,
    shorten,
    shown_task_id,
)
from gateway.core.template_limits import render_limited
from gateway.core.templates import (
    DEFAULT_TEMPLATES,
    CompiledSet,
    TemplateProblem,
    TemplateSet,
    compile_set,
)

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

__all__ = [
    "KIND_OUTCOME",
    "Renderer",
    "TaskView",
    "TemplateProblem",
    "TemplateSet",
    "check_templates",
    "sample_scope",
]

#: the subscription outcome each message kind answers
KIND_OUTCOME: dict[MessageKind, Outcome] = {
    "result": "succeeded",
    "failure": "failed",
    "still_running": "timed_out",
}
_KIND_EVENT: dict[MessageKind, str] = {
    "result": "succeeded",
    "failure": "failed",
    "still_running": "still_running",
}
_DEFAULT = "(default)"
_SUBJECT_LIMIT = 200
_SLACK_SECTION_LIMIT = 3000
_SLACK_HEADER_LIMIT = 150
_SLACK_MAX_BLOCKS = 50


class TaskView(BaseModel):
    """What a template may see of a task."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    agent: str
    prompt: str
    labels: dict[str, str] = Field(default_factory=dict)
    output: str | None = None
    error: str | None = None
    completed_at: float | None = None
    submitted_at: float | None = None
    model: str | None = None
    links: dict[str, str] = Field(default_factory=dict)


def _scope(
    *,
    kind: MessageKind,
    task: TaskView,
    subscription_id: str,
    source: str | None,
    channel_name: str,
    redacted_target: str,
    fallback: bool,
    message_id: str,
) -> dict[str, Any]:
    return {
        "task": task.model_dump(exclude={"links"}),
        "kind": kind,
        "outcome": KIND_OUTCOME[kind],
        "event": _KIND_EVENT[kind],
        "labels": dict(task.labels),
        "links": dict(task.links),
        "subscription": {
            "id": subscription_id,
            "source": source,
            "channel": channel_name,
            "target": redacted_target,
            "fallback": fallback,
        },
        "channel": channel_name,
        "message_id": message_id,
    }


def sample_scope(kind: MessageKind) -> dict[str, Any]:
    """A scope with a made-up task, to try templates on when the configuration is checked."""
    task = TaskView(
        task_id="t_sample", agent="default", prompt="Summarise <the> report & list risks",
        labels={"team": "ml"}, output="A <b>sample</b> output & more" if kind == "result" else None,
        error="a sample error" if kind == "failure" else None,
        completed_at=1_700_000_000.0 if kind != "still_running" else None,
        submitted_at=1_699_999_000.0, model="offline",
        links={"status": "https://gateway.example.com/v1/tasks/t_sample"},
    )
    return _scope(kind=kind, task=task, subscription_id="s_sample", source="sample",
                  channel_name="sample", redacted_target="s***@example.com", fallback=False,
                  message_id="m_sample")


@functools.cache
def _default_set() -> CompiledSet:
    """The built-in templates, compiled once per process (compiled templates are immutable)."""
    default, problems = compile_set(_DEFAULT, DEFAULT_TEMPLATES)
    if problems:  # a bug of ours, not the user's
        raise AssertionError(f"built-in templates do not compile: {problems}")
    return default


class Renderer:
    """Renders messages; built once per process from the configured templates.

    Raises :class:`~gateway.core.errors.ConfigError` when a template does not compile.
    """

    def __init__(
        self,
        templates: Mapping[str, TemplateSet] | None = None,
        *,
        channel_templates: Mapping[str, str] | None = None,
    ) -> None:
        problems: list[TemplateProblem] = []
        self._default = _default_set()
        self._sets: dict[str, CompiledSet] = {}
        for name, template_set in (templates or {}).items():
            compiled, found = compile_set(name, template_set)
            self._sets[name] = compiled
            problems.extend(found)
        if problems:
            raise ConfigError([str(p) for p in problems])
        self._channel_templates = dict(channel_templates or {})

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Renderer:
        """The renderer of a loaded configuration (its templates and channels' templates)."""
        return cls(config.templates, channel_templates=config.channel_templates())

    @property
    def template_names(self) -> list[str]:
        return sorted(self._sets)

    def render(
        self,
        *,
        kind: MessageKind,
        task: TaskView,
        subscription: Subscription,
        target: Target,
        channel: ChannelInstance,
        message_id: str,
    ) -> Message:
        """The message for ``target`` (the subscription's own, or one of its fallbacks).

        A template set named by the subscription that no longer exists (the configuration
        changed after the task was routed) falls back to the channel's or the default one.
        Raises :class:`~gateway.core.errors.RenderError` when a configured template fails.
        """
        task = task.model_copy(update={"task_id": shown_task_id(task.task_id)})
        chosen = self._choose(subscription.template, channel.name)
        cls = channel.plugin.cls
        own_format = cls.template_kind not in BUILTIN_KINDS
        is_fallback = (target.channel, target.target) != (subscription.channel, subscription.target)
        scope = _scope(
            kind=kind, task=task, subscription_id=subscription.id or "",
            source=subscription.source, channel_name=channel.name,
            redacted_target=channel.channel.redact_target(target.target),
            fallback=is_fallback, message_id=message_id,
        )
        parts = render_parts(chosen, self._default,
                             "text" if own_format else cls.template_kind, scope)
        if own_format:
            parts.data = dict(render_own_fields(
                cls, chosen, {**scope, "subject": parts.subject, "text": parts.text}))
        text = parts.text
        limit = cls.max_text_length
        if limit is not None:
            text = shorten(text, limit)
        data = parts.data
        json.dumps(data)  # fail here, not in a channel, if something is not serialisable
        return Message(
            id=message_id,
            task_id=task.task_id,
            subscription_id=subscription.id or "",
            kind=kind,
            target=target.target,
            subject=parts.subject,
            text=text,
            html=parts.html,
            data=data,
        )

    def _choose(self, subscription_template: str | None, channel_name: str) -> CompiledSet | None:
        for name in (subscription_template, self._channel_templates.get(channel_name)):
            if name is not None and name in self._sets:
                return self._sets[name]
        return None


class RenderedParts(BaseModel):
    """The parts of a message, before the channel's length limit is applied."""

    model_config = ConfigDict(extra="forbid")

    subject: str
    text: str
    html: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


def _run(chosen: CompiledSet | None, field: str, template: Template,
         scope: Mapping[str, Any]) -> str:
    try:
        return render_limited(template, scope)
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        name = chosen.name if chosen is not None else _DEFAULT
        raise RenderError(f"template {name!r} {field}: {type(exc).__name__}: {exc}") from None


def _pick(chosen: CompiledSet | None, default: CompiledSet, field: str) -> Template:
    template = chosen.get(field) if chosen is not None else None
    if template is not None:
        return template
    fallback = default.get(field)
    assert fallback is not None, field
    return fallback


def _json(chosen: CompiledSet | None, field: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        name = chosen.name if chosen is not None else _DEFAULT
        raise RenderError(
            f"template {name!r} {field}: does not render valid JSON ({exc.msg} at line "
            f"{exc.lineno}); write values as {{{{ value }}}} without quotes: they are "
            "JSON-encoded"
        ) from None


def render_parts(chosen: CompiledSet | None, default: CompiledSet, template_kind: str,
                 scope: dict[str, Any]) -> RenderedParts:
    """Render the fields ``template_kind`` needs from ``chosen`` (else ``default``)."""
    own = chosen.fields if chosen is not None else {}
    subject = _run(chosen, "subject", _pick(chosen, default, "subject"), scope)
    subject = shorten(" ".join(subject.split()), _SUBJECT_LIMIT)
    scope = {**scope, "subject": subject}
    html: str | None = None
    data: dict[str, Any] = {}
    if template_kind == "slack":
        if "slack" in own or chosen is None or chosen.slack_text is None:
            text = _run(chosen, "slack", _pick(chosen, default, "slack"), scope).strip()
        else:
            text = _run(chosen, "text", chosen.slack_text, scope).strip()
        data["blocks"] = _slack_blocks(chosen, subject, text, {**scope, "text": text})
    elif template_kind == "sms":
        field = "sms" if "sms" in own or "text" not in own else "text"
        text = " ".join(_run(chosen, field, _pick(chosen, default, field), scope).split())
    else:
        text = _run(chosen, "text", _pick(chosen, default, "text"), scope).strip()
        if template_kind == "email" and ("html" in own or "text" not in own):
            html = _run(chosen, "html", _pick(chosen, default, "html"), scope)
        elif template_kind == "webhook":
            document = _json(chosen, "webhook", _run(
                chosen, "webhook", _pick(chosen, default, "webhook"), scope))
            if not isinstance(document, dict):
                name = chosen.name if chosen is not None else _DEFAULT
                raise RenderError(f"template {name!r} webhook: must render a JSON object, "
                                  f"not {type(document).__name__}")
            data = document
    return RenderedParts(subject=subject, text=text, html=html, data=data)


def _slack_blocks(chosen: CompiledSet | None, subject: str, text: str,
                  scope: Mapping[str, Any]) -> list[Any]:
    template = chosen.get("slack_blocks") if chosen is not None else None
    if template is not None:
        document = _json(chosen, "slack_blocks", _run(chosen, "slack_blocks", template, scope))
        if isinstance(document, dict) and isinstance(document.get("blocks"), list):
            document = document["blocks"]
        if not isinstance(document, list):
            name = chosen.name if chosen is not None else _DEFAULT
            raise RenderError(f"template {name!r} slack_blocks: must render a JSON list of "
                              "blocks (or an object with 'blocks')")
        return document
    blocks: list[Any] = [{
        "type": "header",
        "text": {"type": "plain_text", "text": shorten(subject, _SLACK_HEADER_LIMIT)},
    }]
    for chunk in _chunks(text, _SLACK_SECTION_LIMIT)[: _SLACK_MAX_BLOCKS - 1]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    return blocks


def _chunks(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, split at line ends when possible."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            chunks.append(current)
            current = ""
        current += line
    if current.strip():
        chunks.append(current)
    return [c.rstrip("\n") for c in chunks if c.strip()] or [" "]


def check_templates(templates: Mapping[str, TemplateSet]) -> list[TemplateProblem]:
    """Every problem of the configured templates: syntax errors, and failures on a sample task
    of each kind for each channel kind (a webhook template that is not JSON, a bad filter)."""
    default = _default_set()
    problems: list[TemplateProblem] = []
    for name, template_set in templates.items():
        compiled, found = compile_set(name, template_set)
        problems.extend(found)
        if found:
            continue
        problems.extend(_sample_problems(name, compiled, default))
    return problems


def _sample_problems(name: str, compiled: CompiledSet,
                     default: CompiledSet) -> list[TemplateProblem]:
    """What goes wrong rendering ``compiled`` on a sample of each kind for each channel kind;
    a sandbox limit is reported once (trying it again would only cost the same again)."""
    problems: list[TemplateProblem] = []
    seen: set[str] = set()
    for template_kind in BUILTIN_KINDS:
        for kind in KIND_OUTCOME:
            try:
                render_parts(compiled, default, template_kind, sample_scope(kind))
            except RenderError as exc:
                message = str(exc).removeprefix(f"template {name!r} ")
                field, _, detail = message.partition(": ")
                if detail.startswith("TemplateLimitError: "):
                    return [*problems, TemplateProblem(name, field, None, detail.removeprefix(
                        "TemplateLimitError: "))]
                if message not in seen:
                    seen.add(message)
                    problems.append(TemplateProblem(
                        name, field, None, f"fails on a sample {kind} message: {detail}"))
    return problems
