"""Checks a configuration document and reports every problem with its file, line and key path.

Each entry of each section is validated on its own (so one bad channel does not hide the
problems of the others), then the references between sections are checked: plugins and
their options, channels, agents, templates, fallbacks and targets.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from gateway.channels import (
    Channel,
    ChannelPlugin,
    TimeoutOption,
    check_templates,
    egress_policy,
    format_problem,
    split_timeout,
)
from gateway.config._yaml_lines import (
    KeyPath,
    YamlSyntaxError,
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
from gateway.core import CHANNEL_NAME, CHANNEL_NAME_RULE, MIN_SECRET_LENGTH

__all__ = ["check"]
from gateway.config._report import (
    AGENT_NAME,
    HOOK_NAME,
    Report,
    describe,
    entries,
    suggest,
    unwrap,
)

ENTRY_SECTIONS = ("agents", "channels", "subscriptions", "templates")


def other_sections(report: Report, data: Mapping[str, Any]) -> dict[str, Any]:
    """Every other section of :class:`GatewayConfig` (``api``, ``hooks`` ...), validated whole
    by its own model: adding a section is adding a field."""
    valid: dict[str, Any] = {}
    for name, info in GatewayConfig.model_fields.items():
        if name in ENTRY_SECTIONS or name not in data:
            continue
        declared: Any = info.annotation
        annotation = unwrap(declared)
        entry = get_args(annotation)[-1] if get_origin(annotation) is dict else None
        if isinstance(entry, type) and issubclass(entry, BaseModel):  # name -> entry
            valid[name] = entries(report, name, data[name], entry, as_list=False)
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
    report: Report
    plugins: Mapping[str, ChannelPlugin]
    channels: dict[str, ChannelConfig]
    channel_names: list[str]
    template_names: Collection[str]
    instances: dict[str, Channel[Any]] = field(default_factory=dict)
    #: channels whose configured options fail their plugin's model (reported there)
    bad_options: set[str] = field(default_factory=set)
    #: plugins whose message format was checked (a problem is reported once)
    formats_checked: set[str] = field(default_factory=set)

    def unknown_channel(self, name: str) -> str:
        return f"unknown channel {name!r}; known: {', '.join(self.channel_names) or 'none'}"

    def plugin_of(self, channel: str) -> ChannelPlugin | None:
        configured = self.channels.get(channel)
        return self.plugins.get(configured.plugin or channel if configured else channel)

    def check_format(self, path: KeyPath, plugin: ChannelPlugin) -> None:
        """The plugin's message format, at the first place the configuration uses it."""
        if plugin.name in self.formats_checked:
            return
        self.formats_checked.add(plugin.name)
        problem = format_problem(plugin.cls)
        if problem is not None:
            self.report.add(path, problem)

    def instance(self, plugin: ChannelPlugin) -> Channel[Any]:
        found = self.instances.get(plugin.name)
        if found is None:
            found = self.instances[plugin.name] = plugin.cls()
        return found


def _check_channels(ctx: _Context, valid: Mapping[str, ChannelConfig]) -> None:
    report = ctx.report
    for name, channel in valid.items():
        base: KeyPath = ("channels", name)
        if not CHANNEL_NAME.match(name):
            report.add(base, f"channel name {name!r} must be {CHANNEL_NAME_RULE}")
        plugin_name = channel.plugin or name
        plugin = ctx.plugins.get(plugin_name)
        installed = ", ".join(sorted(ctx.plugins)) or "none"
        if plugin is None:
            hint = "" if channel.plugin else "; set plugin: to one of them"
            report.add((*base, "plugin") if channel.plugin else base,
                       f"unknown plugin {plugin_name!r}; installed: {installed}{hint}")
        else:
            ctx.check_format((*base, "plugin") if channel.plugin else base, plugin)
            if _plugin_options(report, (*base, "options"), plugin, channel.options) is None:
                ctx.bad_options.add(name)
        for i, other in enumerate(channel.fallback):
            if other == name:
                report.add((*base, "fallback", i), f"channel {name!r} cannot fall back to itself")
            elif other not in ctx.channel_names:
                report.add((*base, "fallback", i), ctx.unknown_channel(other))
        if channel.template is not None and channel.template not in ctx.template_names:
            report.add((*base, "template"), _unknown_template(channel.template, ctx))


def _plugin_options(report: Report, path: KeyPath, plugin: ChannelPlugin,
                    options: Mapping[str, Any]) -> BaseModel | None:
    """The plugin's options, or None when they (or the core's ``timeout``) were reported."""
    try:
        rest, _ = split_timeout(options)
    except ValidationError as exc:
        report.add_validation(path, exc, TimeoutOption, options)
        return None
    try:
        return plugin.cls.Options.model_validate(rest)
    except ValidationError as exc:
        report.add_validation(path, exc, plugin.cls.Options, rest)
        return None


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
    if not CHANNEL_NAME.match(dest.channel):
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
    if plugin is not None and dest.channel not in ctx.channels:  # a plugin used by its name
        ctx.check_format(path, plugin)
    if plugin is None or dest.channel in ctx.bad_options or (
        dest.channel in ctx.channels and dest.channel not in valid_channels
    ):
        return  # the channel's own problem is reported with the channel
    configured = ctx.channels.get(dest.channel)
    merged = {**(configured.options if configured else {}), **dest.options}
    options = _plugin_options(report, (*path, "options"), plugin, merged)
    if options is None:
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


def _check_agents(report: Report, valid: Mapping[str, AgentConfig],
                  output_schemas: Collection[str] | None, env: Mapping[str, str]) -> None:
    from gateway.config.model_providers import key_problem

    for name, agent in valid.items():
        problem = key_problem(agent.model, api_key=agent.api_key is not None,
                              base_url=agent.base_url, env=env)
        if problem:
            report.add(("agents", name), problem, depends_on=("agents", name, "api_key"))
        if not AGENT_NAME.match(name):
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


def _check_templates(report: Report, valid: Mapping[str, TemplateSet]) -> None:
    for problem in check_templates(valid):
        path: KeyPath = ("templates", problem.template, *problem.field.split(".", 1))
        line = None
        message = problem.message
        if problem.line is not None:
            start = report.doc.value_lines.get(path)
            line = start + problem.line - 1 if start is not None else None
            message = f"{message} (line {problem.line} of the template)"
        report.add(path, message, line=line)


def _check_plugin_fields(ctx: _Context, valid: Mapping[str, TemplateSet]) -> None:
    """A template set's ``plugin_fields`` are fields some installed plugin declares."""
    declared = sorted({key for plugin in ctx.plugins.values()
                       for key in plugin.cls.template_fields})
    for name, template_set in valid.items():
        for key in template_set.plugin_fields:
            if key not in declared:
                ctx.report.add(("templates", name, "plugin_fields", key),
                               f"no installed plugin declares the template field {key!r}; "
                               f"declared: {', '.join(declared) or 'none'}")


def _check_api(report: Report, api: object, channel_names: Collection[str]) -> None:
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


def _check_hooks(report: Report, hooks: object, agent_names: Collection[str]) -> None:
    from gateway.config.hooks import template_problems

    for name, hook in (hooks if isinstance(hooks, dict) else {}).items():
        if not isinstance(hook, HookSource):
            continue
        base: KeyPath = ("hooks", name)
        if not HOOK_NAME.match(name):
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
    report = Report(source, doc)
    for path, line, first_line in doc.duplicates:
        report.add(path, f"duplicate key (first at line {first_line})", line=line)
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        report.add((), "the file must be a mapping with the sections agents, channels, "
                       f"subscriptions and templates, not {describe(data)}")
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
            report.add((str(key),), f"unknown section {key!r}; {suggest(str(key), sections)}"
                                    f"expected one of: {', '.join(sections)}")
    agents = entries(report, "agents", data.get("agents"), AgentConfig, as_list=False)
    channels = entries(report, "channels", data.get("channels"), ChannelConfig, as_list=False)
    subscriptions = entries(report, "subscriptions", data.get("subscriptions"),
                             StandingSubscription, as_list=True)
    templates = entries(report, "templates", data.get("templates"), TemplateSet, as_list=False)
    others = other_sections(report, data)

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
    _check_plugin_fields(ctx, templates)
    _check_api(report, others.get("api"), ctx.channel_names)
    _check_hooks(report, others.get("hooks"), sorted({*names("agents"), "default"}))
    if report.problems:
        return None, report.lines(secrets), secrets
    config = GatewayConfig(
        agents=agents, channels=channels, subscriptions=list(subscriptions.values()),
        templates=templates, **others,
    )
    return config, [], secrets
