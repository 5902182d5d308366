"""Checks a configuration document and reports every problem with its file, line and key path.

Each entry of each section is validated on its own (so one bad channel does not hide the
problems of the others), then the references between sections are checked: plugins and
their options, channels, agents, templates, fallbacks and targets.
"""

from __future__ import annotations

import copy as copy_module
import difflib
import re
import types
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from gateway.channels import Channel, ChannelPlugin, check_templates, egress_policy
from gateway.config._yaml_lines import (
    KeyPath,
    YamlDocument,
    YamlSyntaxError,
    format_path,
    parse_yaml,
    resolve_env,
)
from gateway.config.schema import (
    AgentConfig,
    ApiConfig,
    ChannelConfig,
    Destination,
    GatewayConfig,
    HookSource,
    StandingSubscription,
    TemplateSet,
)
from gateway.core import MARKER, MIN_SECRET_LENGTH

__all__ = ["check"]

_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_HOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _describe(value: object) -> str:
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


def _unwrap(annotation: Any) -> Any:
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
        current = _unwrap(info.annotation)
        i += 1
        while get_origin(current) in (dict, list) and i < len(loc):
            current = _unwrap(get_args(current)[-1])
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


def _suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown_key(key: str, allowed: Collection[str]) -> str:
    return (f"unknown key {key!r}; {_suggest(key, allowed)}"
            f"expected one of: {', '.join(allowed)}")


def _message(err: Mapping[str, Any], parent: type[BaseModel] | None) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        if parent is None:
            return f"unknown key {key!r}"
        return _unknown_key(key, list(parent.model_fields))
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{value!r} is not one of {expected}"
    msg = str(err["msg"])
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind.endswith("_type"):
        return f"{msg}, not {_describe(value)}"
    return msg


@dataclass
class _Report:
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
        longest_first = sorted(set(secrets), key=len, reverse=True)
        for _, _, text in sorted(self.problems):
            for secret in longest_first:
                text = text.replace(secret, MARKER)
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


def _entries(report: _Report, name: str, value: object, model: type[BaseModel],
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
        report.add((name,), f"must be {shape}, not {_describe(value)}")
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


_ENTRY_SECTIONS = ("agents", "channels", "subscriptions", "templates")


def _other_sections(report: _Report, data: Mapping[str, Any]) -> dict[str, Any]:
    """Every other section of :class:`GatewayConfig` (``api``, ``hooks`` ...), validated whole
    by its own model: adding a section is adding a field."""
    valid: dict[str, Any] = {}
    for name, info in GatewayConfig.model_fields.items():
        if name in _ENTRY_SECTIONS or name not in data:
            continue
        declared: Any = info.annotation
        annotation = _unwrap(declared)
        entry = get_args(annotation)[-1] if get_origin(annotation) is dict else None
        if isinstance(entry, type) and issubclass(entry, BaseModel):  # name -> entry
            valid[name] = _entries(report, name, data[name], entry, as_list=False)
            continue
        try:
            valid[name] = TypeAdapter(declared).validate_python(data[name])
        except ValidationError as exc:
            model = annotation if isinstance(annotation, type) and issubclass(
                annotation, BaseModel) else None
            report.add_validation((name,), exc, model, data[name])
    return valid


@dataclass
class _Context:
    report: _Report
    plugins: Mapping[str, ChannelPlugin]
    channels: dict[str, ChannelConfig]
    channel_names: list[str]
    template_names: Collection[str]
    instances: dict[str, Channel[Any]] = field(default_factory=dict)
    #: channels whose configured options fail their plugin's model (reported there)
    bad_options: set[str] = field(default_factory=set)

    def unknown_channel(self, name: str) -> str:
        return f"unknown channel {name!r}; known: {', '.join(self.channel_names) or 'none'}"

    def plugin_of(self, channel: str) -> ChannelPlugin | None:
        configured = self.channels.get(channel)
        return self.plugins.get(configured.plugin or channel if configured else channel)

    def instance(self, plugin: ChannelPlugin) -> Channel[Any]:
        found = self.instances.get(plugin.name)
        if found is None:
            found = self.instances[plugin.name] = plugin.cls()
        return found


def _check_channels(ctx: _Context, valid: Mapping[str, ChannelConfig]) -> None:
    report = ctx.report
    for name, channel in valid.items():
        base: KeyPath = ("channels", name)
        if not _CHANNEL_NAME.match(name):
            report.add(base, f"channel name {name!r} must be lower-case letters, digits, '-' "
                             "or '_', starting with a letter")
        plugin_name = channel.plugin or name
        plugin = ctx.plugins.get(plugin_name)
        installed = ", ".join(sorted(ctx.plugins)) or "none"
        if plugin is None:
            hint = "" if channel.plugin else "; set plugin: to one of them"
            report.add((*base, "plugin") if channel.plugin else base,
                       f"unknown plugin {plugin_name!r}; installed: {installed}{hint}")
        else:
            try:
                plugin.cls.Options.model_validate(channel.options)
            except ValidationError as exc:
                report.add_validation((*base, "options"), exc, plugin.cls.Options,
                                      channel.options)
                ctx.bad_options.add(name)
        for i, other in enumerate(channel.fallback):
            if other == name:
                report.add((*base, "fallback", i), f"channel {name!r} cannot fall back to itself")
            elif other not in ctx.channel_names:
                report.add((*base, "fallback", i), ctx.unknown_channel(other))
        if channel.template is not None and channel.template not in ctx.template_names:
            report.add((*base, "template"), _unknown_template(channel.template, ctx))


def _unknown_template(name: str, ctx: _Context) -> str:
    known = ", ".join(sorted(ctx.template_names)) or "none (add a templates: section)"
    return f"unknown template {name!r}; known: {known}"


def _check_destination(ctx: _Context, path: KeyPath, sub_path: KeyPath,
                       sub: StandingSubscription, dest: Destination,
                       valid_channels: Collection[str]) -> None:
    report = ctx.report
    if dest.channel not in ctx.channel_names:
        report.add((*path, "channel"), ctx.unknown_channel(dest.channel))
        return
    if not _CHANNEL_NAME.match(dest.channel):
        return  # the channel's name is reported where it is defined
    try:
        target = sub.target_for(dest)
    except ValidationError as exc:
        report.add_validation(path, exc, None)
        return
    if target is None:
        report.add(path, f"no target for channel {dest.channel!r}: give target: here or add "
                         f"targets: {{{dest.channel}: ...}} to the subscription",
                   depends_on=(*sub_path, "targets", dest.channel))
        return
    plugin = ctx.plugin_of(dest.channel)
    if plugin is None or dest.channel in ctx.bad_options or (
        dest.channel in ctx.channels and dest.channel not in valid_channels
    ):
        return  # the channel's own problem is reported with the channel
    configured = ctx.channels.get(dest.channel)
    merged = {**(configured.options if configured else {}), **dest.options}
    try:
        options = plugin.cls.Options.model_validate(merged)
    except ValidationError as exc:
        report.add_validation((*path, "options"), exc, plugin.cls.Options, merged)
        return
    allow_private = configured is not None and configured.allow_private_targets
    try:
        with egress_policy(allow_private=allow_private, what=dest.channel):
            ctx.instance(plugin).validate_target(target.target, options)
    except ValueError as exc:
        where = (*path, "target") if dest.target else (*sub_path, "targets", dest.channel)
        report.add(where, str(exc))


def _check_subscriptions(ctx: _Context, valid: Mapping[int, StandingSubscription],
                         agent_names: Collection[str], valid_channels: Collection[str]) -> None:
    report = ctx.report
    first: dict[str, int] = {}
    for index, sub in valid.items():
        base: KeyPath = ("subscriptions", index)
        if sub.name in first:
            report.add((*base, "name"), f"duplicate subscription name {sub.name!r} (also "
                                        f"subscriptions[{first[sub.name]}])")
        first.setdefault(sub.name, index)
        for i, agent in enumerate(sub.match.agents):
            if agent not in agent_names:
                report.add((*base, "match", "agents", i),
                           f"unknown agent {agent!r}; known: {', '.join(sorted(agent_names))}")
        for channel in sub.targets:  # all of them: channel fallbacks may use any
            if channel not in ctx.channel_names:
                report.add((*base, "targets", channel), ctx.unknown_channel(channel))
            else:
                _check_destination(ctx, (*base, "targets", channel), base, sub,
                                   Destination(channel=channel), valid_channels)
        if sub.channel is not None:  # the shorthand: channel: and target: beside name:
            _check_destination(ctx, base, base, sub, sub.notify[0], valid_channels)
        else:
            for i, dest in enumerate(sub.notify):
                _check_destination(ctx, (*base, "notify", i), base, sub, dest, valid_channels)
        for i, dest in enumerate(sub.fallback or []):
            _check_destination(ctx, (*base, "fallback", i), base, sub, dest, valid_channels)
        if sub.template is not None and sub.template not in ctx.template_names:
            report.add((*base, "template"), _unknown_template(sub.template, ctx))


def _check_agents(report: _Report, valid: Mapping[str, AgentConfig],
                  output_schemas: Collection[str] | None, env: Mapping[str, str]) -> None:
    from gateway.config.model_providers import key_problem

    for name, agent in valid.items():
        problem = key_problem(agent.model, api_key=agent.api_key is not None,
                              base_url=agent.base_url, env=env)
        if problem:
            report.add(("agents", name), problem, depends_on=("agents", name, "api_key"))
        if not _AGENT_NAME.match(name):
            report.add(("agents", name), f"agent name {name!r} must be letters, digits, '.', "
                                         "'-' or '_' (at most 64)")
        schema = agent.output_schema
        if output_schemas is not None and schema is not None and schema not in output_schemas:
            known = ", ".join(sorted(output_schemas)) or "none"
            report.add(("agents", name, "output_schema"),
                       f"unknown output schema {schema!r}; known: {known}")


def _agent_keys(agents: Collection[AgentConfig], env: Mapping[str, str]) -> list[str]:
    """The agents' model keys: each api_key (one written in the file is as secret as one from
    the environment), else the provider's own variable, which the provider will read."""
    from gateway.config.model_providers import PROVIDERS

    keys = []
    for agent in agents:
        if agent.api_key is not None:
            keys.append(agent.api_key.get_secret_value())
            continue
        info = PROVIDERS.get(agent.model.partition(":")[0])
        keys += [env[name] for name in (info.key_env if info else ()) if env.get(name)]
    return keys


def _check_templates(report: _Report, valid: Mapping[str, TemplateSet]) -> None:
    for problem in check_templates(valid):
        path: KeyPath = ("templates", problem.template, problem.field)
        line = None
        message = problem.message
        if problem.line is not None:
            start = report.doc.value_lines.get(path)
            line = start + problem.line - 1 if start is not None else None
            message = f"{message} (line {problem.line} of the template)"
        report.add(path, message, line=line)


def _check_api(report: _Report, api: object, channel_names: Collection[str]) -> None:
    if not isinstance(api, ApiConfig):
        return
    first_name: dict[str, int] = {}
    first_hash: dict[str, int] = {}
    for i, key in enumerate(api.keys):
        if key.name in first_name:
            report.add(("api", "keys", i, "name"), f"duplicate key name {key.name!r} (also "
                                                   f"api.keys[{first_name[key.name]}])")
        if key.hash in first_hash:
            report.add(("api", "keys", i, "hash"), "the same hash as "
                                                   f"api.keys[{first_hash[key.hash]}]")
        first_name.setdefault(key.name, i)
        first_hash.setdefault(key.hash, i)
    for i, channel in enumerate(api.channels or []):
        if channel not in channel_names:
            known = ", ".join(channel_names) or "none"
            report.add(("api", "channels", i), f"unknown channel {channel!r}; known: {known}")


def _check_hooks(report: _Report, hooks: object, agent_names: Collection[str]) -> None:
    from gateway.config.hooks import template_problems

    for name, hook in (hooks if isinstance(hooks, dict) else {}).items():
        if not isinstance(hook, HookSource):
            continue
        base: KeyPath = ("hooks", name)
        if not _HOOK_NAME.match(name):
            report.add(base, f"hook name {name!r} must be lower-case letters, digits, '-' or "
                             "'_' (at most 64): it is part of the URL /v1/hooks/NAME")
        if hook.agent not in agent_names:
            report.add((*base, "agent"), f"unknown agent {hook.agent!r}; known: "
                                         f"{', '.join(sorted(agent_names))}")
        for where, line, message in template_problems(hook):
            path: KeyPath = (*base, *where)
            start = report.doc.value_lines.get(path) if line is not None else None
            at = start + line - 1 if start is not None and line is not None else None
            suffix = f" (line {line} of the template)" if line is not None else ""
            report.add(path, message + suffix, line=at)


def check(
    text: str,
    *,
    plugins: Mapping[str, ChannelPlugin],
    source: str,
    env: Mapping[str, str],
    output_schemas: Collection[str] | None,
) -> tuple[GatewayConfig | None, list[str], list[str]]:
    """``(config or None, error lines, secret values)`` of a configuration text."""
    try:
        doc = parse_yaml(text)
    except YamlSyntaxError as exc:
        where = f"{source}:{exc.line}" if exc.line else source
        return None, [f"{where} {exc.message}"], []
    report = _Report(source, doc)
    for path, line, first_line in doc.duplicates:
        report.add(path, f"duplicate key (first at line {first_line})", line=line)
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        report.add((), "the file must be a mapping with the sections agents, channels, "
                       f"subscriptions and templates, not {_describe(data)}")
        return None, report.lines([]), []
    resolved = resolve_env(data, env)
    for path, message in resolved.errors:
        report.add(path, message)
        report.suppressed.append(path)
    data = resolved.data
    secrets = [s for s in resolved.secrets if len(s) >= MIN_SECRET_LENGTH]

    sections = list(GatewayConfig.model_fields)
    for key in data:
        if key not in sections:
            report.add((str(key),), f"unknown section {key!r}; {_suggest(str(key), sections)}"
                                    f"expected one of: {', '.join(sections)}")
    agents = _entries(report, "agents", data.get("agents"), AgentConfig, as_list=False)
    channels = _entries(report, "channels", data.get("channels"), ChannelConfig, as_list=False)
    subscriptions = _entries(report, "subscriptions", data.get("subscriptions"),
                             StandingSubscription, as_list=True)
    templates = _entries(report, "templates", data.get("templates"), TemplateSet, as_list=False)
    others = _other_sections(report, data)

    def names(section: str) -> list[str]:
        value = data.get(section)
        return [str(k) for k in value] if isinstance(value, dict) else []

    agents.setdefault("default", AgentConfig())
    ctx = _Context(
        report, plugins, channels,
        channel_names=sorted(set(plugins) | set(names("channels"))),
        template_names=names("templates"),
    )
    _check_agents(report, agents, output_schemas, env)
    secrets += [key for key in _agent_keys(agents.values(), env) if len(key) >= MIN_SECRET_LENGTH]
    _check_channels(ctx, channels)
    _check_subscriptions(ctx, subscriptions, sorted({*names("agents"), "default"}), channels)
    _check_templates(report, templates)
    _check_api(report, others.get("api"), ctx.channel_names)
    _check_hooks(report, others.get("hooks"), sorted({*names("agents"), "default"}))
    if report.problems:
        return None, report.lines(secrets), secrets
    config = GatewayConfig(
        agents=agents, channels=channels, subscriptions=list(subscriptions.values()),
        templates=templates, **others,
    )
    return config, [], secrets
