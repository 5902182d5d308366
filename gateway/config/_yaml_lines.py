"""YAML with line numbers: parse a document once, remember where every key and item is.

Errors a user can cause name the file, the line and the key path
(``config/gateway.yaml:42 subscriptions[3].channel: ...``); this module gives the line and
the path. ``${ENV_VAR}`` references are resolved here too, because a missing variable is an
error of a place in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from gateway.config._yaml_limits import YamlLimitError, check_events, check_size

__all__ = [
    "EnvResolution",
    "KeyPath",
    "YamlDocument",
    "YamlSyntaxError",
    "format_path",
    "parse_yaml",
    "resolve_env",
]

KeyPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
#: ``${NAME}``, ``${NAME:-default}``, or ``$${`` for a literal ``${``
_ENV_REF = re.compile(r"\$(\$)?\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class YamlSyntaxError(Exception):
    """The text is not YAML (or not a single document); ``line`` is 1-based."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def format_path(path: KeyPath) -> str:
    """``("subscriptions", 3, "channel")`` -> ``subscriptions[3].channel``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


@dataclass
class YamlDocument:
    """The data of a document and the 1-based line of each key (mappings) or item (lists)."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    #: line of the first character of a scalar value's content (block scalars: the next line)
    value_lines: dict[KeyPath, int] = field(default_factory=dict)
    #: duplicate keys: (path, line, line of the first occurrence)
    duplicates: list[tuple[KeyPath, int, int]] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(_normal(path[:end]))
            if line is not None:
                return line
        return 1


def _normal(path: KeyPath) -> KeyPath:
    return tuple(p if isinstance(p, int) else str(p) for p in path)


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else "<complex key>"


def _walk(doc: YamlDocument, node: yaml.Node, path: KeyPath, seen: set[int]) -> None:
    if id(node) in seen:
        return  # an alias: its lines are where the anchored value is written
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _key_text(key_node)
            line = key_node.start_mark.line + 1
            if key == "<<":
                continue  # merge key: the merged entries are walked where they are defined
            if key in first_seen:
                doc.duplicates.append(((*path, key), line, first_seen[key]))
                continue
            first_seen[key] = line
            doc.lines[(*path, key)] = line
            _walk(doc, value_node, (*path, key), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            doc.lines[(*path, index)] = item.start_mark.line + 1
            _walk(doc, item, (*path, index), seen)
    elif isinstance(node, yaml.ScalarNode):
        block = node.style in ("|", ">")
        doc.value_lines[path] = node.start_mark.line + (2 if block else 1)


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document (safe types only) and record where each key and item is.
    Size, nesting, aliases and expanded size are bounded (:mod:`gateway.config._yaml_limits`)."""
    try:
        check_size(len(text.encode("utf-8")))
        loader = check_events(text)(text)
    except YamlLimitError as exc:
        raise YamlSyntaxError(exc.line, f"YAML: {exc.message}") from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        context = exc.context_mark
        if exc.context and exc.problem and context is not None and mark is not None:
            if context.line != mark.line:
                problem += f" ({exc.context} at line {context.line + 1})"
            elif "found" in exc.problem:
                problem = f"{exc.context}: {problem}"
        raise YamlSyntaxError(mark.line + 1 if mark else None, f"YAML syntax: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(None, f"YAML syntax: {exc}") from None
    except YamlLimitError as exc:
        raise YamlSyntaxError(exc.line, f"YAML: {exc.message}") from None
    finally:
        loader.dispose()
    doc = YamlDocument(data)
    if node is not None:
        _walk(doc, node, (), set())
    return doc


@dataclass
class EnvResolution:
    """The data with ``${ENV}`` references replaced, what was used, and what was missing."""

    data: Any
    #: values taken from the environment (treated as secrets: never shown)
    secrets: list[str] = field(default_factory=list)
    #: (path, message) of each reference that could not be resolved
    errors: list[tuple[KeyPath, str]] = field(default_factory=list)


def resolve_env(data: Any, env: Mapping[str, str]) -> EnvResolution:
    """Replace ``${NAME}`` (or ``${NAME:-default}``) in every string value from ``env``.

    ``$${`` stands for a literal ``${``. Keys are left as they are.
    """
    result = EnvResolution(None)
    result.data = _resolve(data, (), env, result)
    return result


def _resolve(value: Any, path: KeyPath, env: Mapping[str, str], out: EnvResolution) -> Any:
    if isinstance(value, str):
        return _resolve_text(value, path, env, out)
    if isinstance(value, dict):
        return {k: _resolve(v, (*path, str(k)), env, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, (*path, i), env, out) for i, v in enumerate(value)]
    return value


def _resolve_text(text: str, path: KeyPath, env: Mapping[str, str], out: EnvResolution) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        name, has_default, default = match.group(2).partition(":-")
        if not _ENV_NAME.match(name):
            out.errors.append(
                (path, f"'${{{match.group(2)}}}' is not an environment variable reference; "
                       "write ${NAME} or ${NAME:-default} (or $${ for a literal ${)")
            )
            return match.group(0)
        value = env.get(name)
        if value is None or (has_default and value == ""):
            if has_default:
                return default
            out.errors.append((path, f"environment variable {name} is not set"))
            return match.group(0)
        if value:
            out.secrets.append(value)
        return value

    return _ENV_REF.sub(substitute, text) if "$" in text else text
