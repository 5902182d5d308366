"""The console's tests use the API's fixtures: the API (with the console at /console) served
in-process in front of the session's real restate-server and gateway endpoint."""

import pytest

from tests.api.conftest import api_config_file, api_url, http

__all__ = ["api_config_file", "api_url", "http"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The browser tests run in the normal engine mode only (they are slow, and what they
    check is the page, not the engine): their always-replay variants are deselected."""
    dropped = [i for i in items if i.path.name == "test_browser.py"
               and "always-replay" in i.name]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]
