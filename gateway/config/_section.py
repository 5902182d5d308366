"""What every section of the configuration shares: strict models whose ``repr`` hides
secrets, durations with units, names and target texts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
)

from gateway.core import (
    redactor,
)

if TYPE_CHECKING:
    pass

__all__ = ["ApiTimeout", "Duration", "Section", "TargetText"]

DEFAULT_INSTRUCTIONS = "Complete the task and report the result briefly."

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MODEL = re.compile(r"^[a-z0-9][a-z0-9_.-]*:\S.*$")
_OFFLINE = re.compile(r"^offline(:fail|:sleep=\d+(\.\d+)?)?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration(value: object) -> object:
    """Seconds as a number, or text with a unit: ``90``, ``500ms``, ``30s``, ``5m``, ``2h``."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write seconds (90) or 30s, 5m, 2h")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]
#: a timeout of the public API: at most an hour
ApiTimeout = Annotated[float, BeforeValidator(_duration), Field(gt=0, le=3600)]


def _text_target(value: object) -> object:
    if isinstance(value, bool) or isinstance(value, int | float):
        raise ValueError(f"target must be text; quote it in YAML (\"{value}\"): numbers lose "
                         "their leading + and zeros")
    return value


TargetText = Annotated[str, BeforeValidator(_text_target)]


class _ReprText(str):
    """A pre-rendered (redacted) repr of a field value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


class Section(BaseModel):
    """Base of every configuration model: unknown keys are errors; reprs hide secrets."""

    model_config = ConfigDict(extra="forbid")

    _secrets: tuple[str, ...] = PrivateAttr(default=())

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, _ReprText(redactor(self._secrets)(repr(value)))
