"""Resource limits of the template sandbox: no template may run away with memory or time.

Jinja2's sandbox stops templates from reaching Python internals, not from building a 300 MB
string (``{{ 'a' * 300000000 }}``), a huge number (``{{ 9 ** 9 ** 9 }}``) or looping 10^10
times (two nested ``range(100000)`` loops). Here every rendering gets a budget:

* a string, list or number an operator or a call builds is at most :data:`MAX_STRING` long
  (``*``, ``**``, ``%`` and string methods such as ``ljust`` or ``format`` are checked before
  they run);
* all the loops of one rendering together take at most :data:`MAX_LOOP_ITEMS` items, and one
  ``range`` has at most :data:`MAX_RANGE` items;
* the output is at most :data:`MAX_OUTPUT` characters; recursion (a macro calling itself) is
  an error too.

Going over a limit fails that rendering with :class:`TemplateLimitError` (a
:class:`jinja2.TemplateError`, so a configuration check reports it and a delivery fails with it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import Template, nodes
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "MAX_LOOP_ITEMS",
    "MAX_OUTPUT",
    "MAX_RANGE",
    "MAX_STRING",
    "LimitedSandbox",
    "TemplateLimitError",
    "render_limited",
]

#: the longest string (or list) one expression may build
MAX_STRING = 1_000_000
#: the largest number of bits of a number ``**`` may build
MAX_INT_BITS = 4096
#: the most items one ``range()`` may have
MAX_RANGE = 10_000
#: the most loop iterations (all loops together) of one rendering
MAX_LOOP_ITEMS = 100_000
#: the most characters one rendering may output
MAX_OUTPUT = 10_000_000

_GUARD_FILTER = "__loop_budget__"
#: widths and precisions in a %-format or a format() spec, e.g. %999999999d or {:999999999}
_FORMAT_WIDTH = re.compile(r"\d{7,}")
#: string methods whose integer arguments are the size of the result
_SIZED_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


class TemplateLimitError(SecurityError):
    """A template went over a resource limit of the sandbox while rendering."""


class _Budget:
    __slots__ = ("loop_items",)

    def __init__(self) -> None:
        self.loop_items = 0


_budget: ContextVar[_Budget | None] = ContextVar("gateway_template_budget", default=None)


def _count(iterable: Iterable[Any]) -> Iterator[Any]:
    """``iterable``, charging each item to the rendering's loop budget."""
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.loop_items += 1
            if budget.loop_items > MAX_LOOP_ITEMS:
                raise TemplateLimitError(
                    f"the loops of this template ran more than {MAX_LOOP_ITEMS:,} times")
        yield item


def _range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateLimitError(f"range() of {len(rng):,} items; at most {MAX_RANGE:,}")
    return rng


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if _sized(seq) and isinstance(times, int) and _sized(seq) * times > MAX_STRING:
            raise TemplateLimitError(
                f"'*' would build {_sized(seq) * times:,} items; at most {MAX_STRING:,}")


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * max(abs(left).bit_length() - 1, 1) > MAX_INT_BITS:
            raise TemplateLimitError(f"'**' would build a number of more than "
                                     f"{MAX_INT_BITS:,} bits")


def _check_format(spec: Any) -> None:
    if isinstance(spec, str) and _FORMAT_WIDTH.search(spec):
        raise TemplateLimitError(f"a format width of a million or more; output is at most "
                                 f"{MAX_STRING:,} characters")


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the resource limits of this module."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = _range
        self.filters[_GUARD_FILTER] = _count
        for name in ("center", "indent", "format", "replace", "join"):
            self.filters[name] = _limited_filter(name, self.filters[name])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%":
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(bound, "__self__", None)
        if isinstance(owner, str):
            name = getattr(bound, "__name__", "")
            if name in _SIZED_METHODS and any(
                isinstance(a, int) and a > MAX_STRING for a in (*args, *kwargs.values())
            ):
                raise TemplateLimitError(f"{name}() of more than {MAX_STRING:,} characters")
            if name in ("format", "format_map"):
                _check_format(owner)
            if name in ("replace", "join") and args:
                _check_result(name, owner, args)
        return super().call(__context, __obj, *args, **kwargs)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template's syntax tree with every ``for`` loop charged to the loop budget."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _GUARD_FILTER, [], [], None, None,
                                     lineno=loop.lineno)
        return tree


def _check_result(name: str, text: str, args: tuple[Any, ...]) -> None:
    """Refuse ``text.replace(old, new)`` / ``text.join(items)`` that would be too long."""
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        old, new = args[0], str(args[1])
        times = len(text) + 1 if not old else text.count(old)
        size = len(text) + times * len(new)
    elif name == "join" and isinstance(args[0], list | tuple | range | str):
        items = args[0]
        size = max(len(items) - 1, 0) * len(text) + sum(len(str(i)) for i in items)
    else:
        return
    if size > MAX_STRING:
        raise TemplateLimitError(f"{name}() would build {size:,} characters; at most "
                                 f"{MAX_STRING:,}")


def _limited_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """Jinja's filter ``name`` with its result size checked before it runs."""

    def limited(*args: Any, **kwargs: Any) -> Any:
        values = [a for a in args if not isinstance(a, Context | EvalContext)]
        if name in ("center", "indent") and any(
            isinstance(a, int) and not isinstance(a, bool) and a > MAX_STRING
            for a in (*values[1:], *kwargs.values())
        ):
            raise TemplateLimitError(f"{name} wider than {MAX_STRING:,} characters")
        if name == "format" and values:
            _check_format(values[0])
        if name == "replace" and len(values) >= 3:
            _check_result("replace", str(values[0]), tuple(values[1:]))
        if name == "join" and values:
            first = len(args) - len(values)  # after the eval context Jinja passes
            items = values[0] if isinstance(values[0], str) else list(values[0])
            args = (*args[:first], items, *args[first + 1:])  # a generator is read once
            sep = values[1] if len(values) > 1 else kwargs.get("d", "")
            _check_result("join", str(sep), (items,))
        return original(*args, **kwargs)

    for attr in ("jinja_pass_arg",):  # keep Jinja's context/eval-context passing
        if hasattr(original, attr):
            setattr(limited, attr, getattr(original, attr))
    return limited


def render_limited(template: Template, scope: Mapping[str, Any]) -> str:
    """Render ``template`` within the limits (:class:`TemplateLimitError` beyond them)."""
    token = _budget.set(_Budget())
    try:
        parts: list[str] = []
        size = 0
        for part in template.generate(scope):
            size += len(part)
            if size > MAX_OUTPUT:
                raise TemplateLimitError(
                    f"the output is longer than {MAX_OUTPUT:,} characters")
            parts.append(part)
        return "".join(parts)
    except RecursionError:
        raise TemplateLimitError("the template recurses too deeply (a macro calling "
                                 "itself?)") from None
    finally:
        _budget.reset(token)
