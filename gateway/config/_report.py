"""The problem report of a configuration check: pydantic's errors turned into one line each
(``FILE:LINE KEY.PATH: what is wrong``, with a suggestion for a misspelt key), and each
entry of a section validated on its own."""

from __future__ import annotations

import copy as copy_module
import difflib
import re
import types
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from gateway.config._yaml_lines import (
    KeyPath,
    YamlDocument,
    format_path,
)
from gateway.core import redactor

__all__ = [
    "AGENT_NAME",
    "HOOK_NAME",
    "Report",
    "describe",
    "entries",
    "suggest",
    "unknown_key",
    "unwrap",
]

HOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = (models or args)[0]
        else:
            return annotation


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class found at ``loc`` inside ``model`` (None when it is not a model)."""
    current: Any = model
    i = 0
    while i < len(loc):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(str(loc[i]))
        if info is None:
            return None
        current = unwrap(info.annotation)
        i += 1
        while get_origin(current) in (dict, list) and i < len(loc):
            current = unwrap(get_args(current)[-1])
            i += 1
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _data_loc(loc: Sequence[str | int], data: object) -> tuple[str | int, ...]:
    """``loc`` without the parts pydantic adds that are not keys of the data (the members of
    a union, such as ``list[str]``), so that it is a path in the file."""
    out: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            out.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
        elif i == len(loc) - 1 and isinstance(current, dict):
            out.append(part)  # a missing or an unknown key: still part of the path
        elif not isinstance(current, dict | list) and data is None:
            out.append(part)  # no data to check against
    return tuple(out)


def suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def unknown_key(key: str, allowed: Collection[str]) -> str:
    return (f"unknown key {key!r}; {suggest(key, allowed)}"
            f"expected one of: {', '.join(allowed)}")


def _message(err: Mapping[str, Any], parent: type[BaseModel] | None) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        if parent is None:
            return f"unknown key {key!r}"
        return unknown_key(key, list(parent.model_fields))
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{value!r} is not one of {expected}"
    msg = str(err["msg"])
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind.endswith("_type"):
        return f"{msg}, not {describe(value)}"
    return msg


@dataclass
class Report:
    source: str
    doc: YamlDocument
    problems: list[tuple[int, int, str]] = field(default_factory=list)
    suppressed: list[KeyPath] = field(default_factory=list)

    def add(self, path: KeyPath, message: str, *, line: int | None = None,
            depends_on: KeyPath | None = None) -> None:
        """Report a problem, unless it follows from one already reported (a missing
        environment variable, or a key that failed validation) at ``path`` or ``depends_on``."""
        if any(p[: len(s)] == s for s in self.suppressed for p in (path, depends_on or path)):
            return
        where = format_path(path)
        text = f"{self.source}:{line or self.doc.line_of(path)} "
        text += f"{where}: {message}" if where else message
        self.problems.append((line or self.doc.line_of(path), len(self.problems), text))

    def add_validation(self, prefix: KeyPath, exc: ValidationError,
                       model: type[BaseModel] | None, data: object = None) -> None:
        for err in exc.errors():
            loc = _data_loc(err["loc"], data)
            parent = _model_at(model, loc[:-1]) if model is not None else None
            self.add((*prefix, *loc), _message(err, parent))

    def lines(self, secrets: Sequence[str]) -> list[str]:
        out = []
        redact = redactor(secrets)
        for _, _, problem in sorted(self.problems):
            text = redact(problem)
            if text not in out:
                out.append(text)
        return out


def _without(value: Any, locs: Sequence[tuple[str | int, ...]]) -> Any:
    """A copy of ``value`` without the entries at ``locs`` (the ones that failed)."""
    copy = copy_module.deepcopy(value)
    for loc in sorted(locs, key=lambda loc: [str(p).zfill(9) for p in loc], reverse=True):
        parent = copy
        for part in loc[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if isinstance(parent, dict) and loc[-1] in parent:
                del parent[loc[-1]]
            elif isinstance(parent, list) and isinstance(loc[-1], int) and loc[-1] < len(parent):
                del parent[loc[-1]]
    return copy


def entries(report: Report, name: str, value: object, model: type[BaseModel],
             as_list: bool) -> dict[Any, Any]:
    """Validate each entry of a section on its own; return the valid ones by key/index.

    An entry with errors is reported, then validated again without the failing keys, so
    that what remains of it is still checked against the other sections.
    """
    if value is None:
        return {}
    container = list if as_list else dict
    if not isinstance(value, container):
        shape = "a list" if as_list else "a mapping of name -> entry"
        report.add((name,), f"must be {shape}, not {describe(value)}")
        return {}
    items = enumerate(value) if isinstance(value, list) else value.items()
    valid: dict[Any, Any] = {}
    for key, item in items:
        try:
            valid[key] = model.model_validate(item)
        except ValidationError as exc:
            report.add_validation((name, key), exc, model, item)
            locs = [_data_loc(e["loc"], item) for e in exc.errors()]
            if all(locs):  # every error is at a key that can be left out
                report.suppressed.extend((name, key, *loc) for loc in locs)
                try:
                    valid[key] = model.model_validate(_without(item, locs))
                except ValidationError as again:  # e.g. a check across keys, now reachable
                    report.add_validation((name, key), again, model, item)
    return valid
