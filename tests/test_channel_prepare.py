"""What a channel prepares once the gateway serves (``Channel.aopen``): Apprise's services
are loaded before the first email or SMS needs them, and a channel that fails to prepare
changes nothing else."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from typing import Any, ClassVar

import pytest

from gateway.channels import Channel, ChannelPlugin, Channels, Message, SendReceipt
from gateway.durable import Runtime
from gateway.durable.agent import AgentSpec, build_agent
from gateway.local import ServeOptions, free_port, serve_gateway


class _Prepared(Channel[Any]):
    name: ClassVar[str] = "prepared"
    opened = 0

    async def aopen(self) -> None:
        type(self).opened += 1

    async def send(self, message: Message, options: Any) -> SendReceipt:
        return SendReceipt(detail="sent")


class _Broken(Channel[Any]):
    name: ClassVar[str] = "broken"

    async def aopen(self) -> None:
        raise OSError("the library's plugin directory is gone")

    async def send(self, message: Message, options: Any) -> SendReceipt:
        return SendReceipt(detail="sent")


def _runtime() -> Runtime:
    plugins = {cls.name: ChannelPlugin(cls.name, cls, "tests", "0") for cls in (_Prepared, _Broken)}
    # two channels of one plugin: one object, prepared once
    channels = Channels.from_plugins(plugins, {"second": ("prepared", {}, None)})
    return Runtime(channels=channels, agents={"default": build_agent(AgentSpec("default"))})


async def test_serving_prepares_each_channel_once_and_one_that_fails_changes_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    _Prepared.opened = 0
    stop, ready = asyncio.Event(), asyncio.Event()
    options = ServeOptions(port=free_port())
    with caplog.at_level(logging.WARNING, logger="gateway.channels"):
        server = asyncio.create_task(serve_gateway(_runtime(), options, on_ready=ready.set,
                                                   stop=stop))
        try:
            await asyncio.wait_for(ready.wait(), 30)
            for _ in range(100):  # prepared beside the start, not before it
                if _Prepared.opened and "broken" in caplog.text:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(server, 30)
    assert _Prepared.opened == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["channel broken could not prepare itself (its first delivery will): "
                        "OSError"]


@pytest.mark.parametrize("plugin", ["email", "sms", "apprise"])
def test_an_apprise_channel_loads_the_services_before_its_first_delivery(plugin: str) -> None:
    # a fresh process: Apprise loads its services once per process, on first use
    script = textwrap.dedent(f"""
        import asyncio
        from apprise.manager_plugins import NotificationManager
        from gateway.channels import discover_plugins
        channel = discover_plugins()["{plugin}"].cls()
        before = bool(NotificationManager())
        asyncio.run(channel.aopen())
        print(before, bool(NotificationManager()))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["False", "True"]
