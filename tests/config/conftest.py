"""Fixtures of the configuration, routing and rendering tests."""

from __future__ import annotations

import pytest

from gateway.channels import ChannelPlugin
from tests.config.fakes import fake_plugins


@pytest.fixture
def plugins() -> dict[str, ChannelPlugin]:
    """Fake email, slack, sms, webhook and text plugins (no real plugin is needed)."""
    return fake_plugins()
