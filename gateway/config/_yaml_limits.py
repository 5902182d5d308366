"""Limits that keep a hostile configuration file from exhausting memory, time or the stack.

A configuration file is read whole, so every cost it can cause is bounded before the document
is built: its size, how deep it nests, how many aliases it uses and how many values it stands
for once every alias is expanded (an "alias bomb" of a few hundred bytes otherwise expands to
billions of values). The limits are checked on the parser's event stream first (libyaml's, in
C, when PyYAML has it: a hostile file is refused in well under a second, before any Python
object is built), then again while the document is composed. Going over a limit is a
:class:`YamlLimitError` naming the line and the limit, never a ``MemoryError`` or
``RecursionError``.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = [
    "MAX_ALIASES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "BoundedLoader",
    "YamlLimitError",
    "check_events",
    "check_size",
]

#: the largest configuration file read (1 MiB)
MAX_CONFIG_BYTES = 1024 * 1024
#: the deepest nesting of mappings and lists
MAX_DEPTH = 50
#: the most aliases (``*name``) one document may use
MAX_ALIASES = 1000
#: the most values (keys, scalars, lists, mappings) a document may stand for, aliases expanded
MAX_VALUES = 100_000


class YamlLimitError(Exception):
    """A document goes over a limit; ``line`` is 1-based when known."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def check_size(size: int) -> None:
    """Refuse a file of ``size`` bytes if it is over :data:`MAX_CONFIG_BYTES`."""
    if size > MAX_CONFIG_BYTES:
        raise YamlLimitError(None, f"the file is {size:,} bytes; a configuration file may have "
                                   f"at most 1 MiB ({MAX_CONFIG_BYTES:,} bytes)")


_EventLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed


def check_events(text: str) -> type[yaml.SafeLoader]:
    """Refuse ``text`` if its event stream nests deeper than :data:`MAX_DEPTH`, uses more than
    :data:`MAX_ALIASES` aliases or stands for more than :data:`MAX_VALUES` values.

    Returns the loader to compose it with: libyaml's (fast) when the text parsed cleanly within
    the limits, else :class:`BoundedLoader`, whose syntax errors are the ones users know."""
    anchors: dict[str, int | None] = {}  # None: the anchored collection is still open
    stack: list[list[Any]] = [[None, 0]]  # per open collection: [anchor, its size so far]
    total = aliases = 0
    try:
        for event in yaml.parse(text, Loader=_EventLoader):
            line = event.start_mark.line + 1 if event.start_mark is not None else None
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise YamlLimitError(line, f"more than {MAX_ALIASES:,} aliases (*name); "
                                               "write the values out or use fewer anchors")
                size = anchors.get(str(event.anchor), 0)
                if size is None:
                    raise YamlLimitError(line, "an alias refers to a value that contains it")
                stack[-1][1] += size
                total += size
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    anchors[event.anchor] = 1
                stack[-1][1] += 1
                total += 1
            elif isinstance(event, yaml.CollectionStartEvent):
                if len(stack) > MAX_DEPTH:
                    raise YamlLimitError(line, f"nested more than {MAX_DEPTH} levels deep; a "
                                               "configuration needs far fewer")
                if event.anchor is not None:
                    anchors[event.anchor] = None
                stack.append([event.anchor, 1])
                total += 1
            elif isinstance(event, yaml.CollectionEndEvent) and len(stack) > 1:
                anchor, size = stack.pop()
                if anchor is not None:
                    anchors[anchor] = size
                stack[-1][1] += size
            if total > MAX_VALUES:
                raise YamlLimitError(line, f"the document expands to more than {MAX_VALUES:,} "
                                           "values (aliases counted each time they are used)")
    except yaml.YAMLError:
        return BoundedLoader
    return _EventLoader if _EventLoader is not yaml.SafeLoader else BoundedLoader


class BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing documents deeper than :data:`MAX_DEPTH` or with more than
    :data:`MAX_ALIASES` aliases while it composes them (before recursion can run away), and
    documents that expand to more than :data:`MAX_VALUES` values (see :func:`expanded_size`)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call] # yaml: untyped
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimitError(line, f"more than {MAX_ALIASES:,} aliases (*name); "
                                           "write the values out or use fewer anchors")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlLimitError(line, f"nested more than {MAX_DEPTH} levels deep; a "
                                       "configuration needs far fewer")
        try:
            node: yaml.Node | None = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        assert node is not None  # an event was peeked: there is a node
        return node

    def get_single_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_single_node()
        if node is not None:
            expanded_size(node)
        return node


def expanded_size(root: yaml.Node) -> int:
    """How many values ``root`` stands for with every alias expanded; :class:`YamlLimitError`
    beyond :data:`MAX_VALUES` or for an alias inside the node it names. Linear in the nodes
    written: each node's size is computed once."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in open_nodes:
            raise YamlLimitError(node.start_mark.line + 1,
                                 "an alias refers to a value that contains it")
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        open_nodes.discard(id(node))
        if total > MAX_VALUES:
            raise YamlLimitError(node.start_mark.line + 1,
                                 f"the document expands to more than {MAX_VALUES:,} values "
                                 "(aliases counted each time they are used)")
        sizes[id(node)] = total
        return total

    return size(root)
