"""Table-driven: every file in cases/ is a configuration with its expected outcome.

A ``good_*.yaml`` file carries ``# summary: ...``; a ``bad_*.yaml`` file carries one
``# expect: {file}:LINE KEY.PATH: message`` comment per expected error, in order (at the end
of the file, so the comments do not move the lines they name). ``# env: NAME=value`` lines
give the environment the file is loaded with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.channels import ChannelPlugin
from gateway.config import parse_config
from gateway.core import ConfigError

CASES = Path(__file__).parent / "cases"
OUTPUT_SCHEMAS = {"report"}


def _comments(text: str, tag: str) -> list[str]:
    prefix = f"# {tag}: "
    return [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]


def _env(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in _comments(text, "env"))


def _cases(kind: str) -> list[Path]:
    found = sorted(CASES.glob(f"{kind}_*.yaml"))
    assert found, f"no {kind}_*.yaml cases in {CASES}"
    return found


@pytest.mark.parametrize("path", _cases("good"), ids=lambda p: p.stem)
def test_good_configuration_loads(path: Path, plugins: dict[str, ChannelPlugin]) -> None:
    text = path.read_text(encoding="utf-8")
    config = parse_config(text, plugins=plugins, source=path.name, env=_env(text),
                          output_schemas=OUTPUT_SCHEMAS)
    assert [config.summary()] == _comments(text, "summary")
    assert "default" in config.agents


@pytest.mark.parametrize("path", _cases("bad"), ids=lambda p: p.stem)
def test_bad_configuration_reports_every_error(
    path: Path, plugins: dict[str, ChannelPlugin]
) -> None:
    text = path.read_text(encoding="utf-8")
    expected = [line.replace("{file}", path.name) for line in _comments(text, "expect")]
    assert expected, f"{path.name} has no '# expect:' lines"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins, source=path.name, env=_env(text),
                     output_schemas=OUTPUT_SCHEMAS)
    assert caught.value.errors == expected
    assert str(caught.value) == "\n".join(expected)
    for line in caught.value.errors:
        assert "\n" not in line
