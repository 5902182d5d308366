"""A channel's message format: one of the built-in template kinds, or the plugin's own.

A plugin names its format with ``template_kind``. The built-in kinds are rendered from the
template fields of :mod:`gateway.core.templates` (``email``: subject, text and HTML;
``slack``: mrkdwn and blocks; ``sms``: one short line; ``webhook``: a JSON document;
``text``: subject and text). A plugin with a format of its own names a kind of its own and
declares its fields in ``template_fields`` (field -> default template, plain text): each is
rendered, after the subject and the text, into ``Message.data[field]``; its template sees
what every template sees plus ``subject`` and ``text``. A configured template set overrides
a field under ``plugin_fields``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import Template, TemplateError

from gateway.channels._base import Channel
from gateway.core import RenderError
from gateway.core.template_limits import render_limited
from gateway.core.templates import FIELDS, TOO_DEEP, CompiledSet, environment

__all__ = ["BUILTIN_KINDS", "format_problem", "render_own_fields"]

#: the template kinds the renderer knows without a plugin's help
BUILTIN_KINDS = ("email", "slack", "sms", "webhook", "text")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def format_problem(cls: type[Channel[Any]]) -> str | None:
    """What is wrong with a plugin's declared message format, in one line (None: nothing)."""
    try:
        _own_fields(cls)
    except ValueError as exc:
        return str(exc)
    return None


def render_own_fields(cls: type[Channel[Any]], chosen: CompiledSet | None,
                      scope: Mapping[str, Any]) -> dict[str, str]:
    """The plugin's own fields rendered on ``scope`` (empty for a built-in kind), each from
    the chosen template set's ``plugin_fields`` if it has it, else the plugin's default.

    Raises :class:`~gateway.core.errors.RenderError` when the format is invalid or a field
    fails to render."""
    try:
        fields = _own_fields(cls)
    except ValueError as exc:
        raise RenderError(str(exc)) from None
    rendered: dict[str, str] = {}
    for field, default in fields.items():
        template = chosen.plugin_fields.get(field) if chosen is not None else None
        where = (f"template {chosen.name!r} plugin_fields.{field}" if template is not None
                 and chosen is not None else f"plugin {cls.name!r} template {field}")
        try:
            rendered[field] = render_limited(
                default if template is None else template, scope).strip()
        except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from None
    return rendered


@functools.cache
def _own_fields(cls: type[Channel[Any]]) -> dict[str, Template]:
    """The compiled fields of a plugin's own format; ``ValueError`` saying what to change."""
    kind, declared, name = cls.template_kind, dict(cls.template_fields), cls.name
    known = ", ".join(BUILTIN_KINDS)
    if not declared:
        if kind in BUILTIN_KINDS:
            return {}
        raise ValueError(f"plugin {name!r} asks for template kind {kind!r}, which is unknown; "
                         f"known kinds: {known} (or declare its own in template_fields)")
    if kind in BUILTIN_KINDS:
        raise ValueError(f"plugin {name!r} declares template_fields for the built-in kind "
                         f"{kind!r}: give its own format a template_kind of its own")
    compiled: dict[str, Template] = {}
    for field, source in declared.items():
        if not _FIELD_NAME.fullmatch(field) or field in FIELDS:
            raise ValueError(f"plugin {name!r} template field {field!r}: use lower-case "
                             "letters, digits and '_', not a built-in field "
                             f"({', '.join(FIELDS)})")
        try:
            compiled[field] = environment("plain").from_string(source)
        except TemplateError as exc:
            raise ValueError(f"plugin {name!r} template field {field!r} does not compile: "
                             f"{exc}") from None
        except RecursionError:
            raise ValueError(f"plugin {name!r} template field {field!r}: {TOO_DEEP}") from None
    return compiled
