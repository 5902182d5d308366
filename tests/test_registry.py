"""Channel discovery from entry points: built-ins, a third-party package, and what goes wrong.

Broken and clashing plugins are real distributions (``.dist-info`` directories in a temporary
directory), read through ``importlib.metadata`` like any installed package.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.channels import ENTRY_POINT_GROUP, Message, discover_plugins
from gateway.core import PluginError
from tests.fixtures.echo_plugin import install_echo_plugin

BUILT_IN = {
    "apprise": "gateway-channel-apprise",
    "email": "gateway-channel-email",
    "slack": "gateway-channel-slack",
    "sms": "gateway-channel-sms",
    "webhook": "gateway-channel-webhook",
}

GOOD_CHANNEL = '''
from gateway.channels import Channel, SendReceipt

class {cls}(Channel):
    name = "{name}"

    async def send(self, message, options):
        return SendReceipt()
'''


def make_dist(root: Path, name: str, version: str, entry_points: dict[str, str],
              modules: dict[str, str] | None = None) -> None:
    """An installed distribution: a ``.dist-info`` with METADATA and entry points, and its
    modules, under ``root``."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(source, encoding="utf-8")


def entry_points_in(*roots: Path) -> list[md.EntryPoint]:
    """The channel entry points of the distributions under ``roots``, in path order."""
    return [
        ep
        for dist in md.distributions(path=[str(r) for r in roots])
        for ep in dist.entry_points
        if ep.group == ENTRY_POINT_GROUP
    ]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on ``sys.path``; modules imported from it are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", "") and str(tmp_path) in str(
            sys.modules[name].__file__
        ):
            del sys.modules[name]


def test_built_in_channels_are_discovered_with_their_distribution() -> None:
    plugins = discover_plugins()
    for name, dist in BUILT_IN.items():
        assert plugins[name].distribution == dist
        assert plugins[name].version == "0.1.0"
        assert plugins[name].cls.name == name  # the entry point and the class agree
    assert "echo" not in plugins  # the third-party fixture is not part of the environment


async def test_a_third_party_package_installed_into_a_directory_is_discovered(
    site: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dist_info = install_echo_plugin(site)
    assert dist_info.name == "gateway_channel_echo-1.0.0.dist-info"

    plugins = discover_plugins(entry_points_in(site))
    assert list(plugins) == ["echo"]
    echo = plugins["echo"]
    assert (echo.distribution, echo.version, echo.cls.name) == (
        "gateway-channel-echo", "1.0.0", "echo")
    assert "echo" in discover_plugins()  # on sys.path, it joins the built-in channels

    out = tmp_path_factory.mktemp("echo") / "deliveries.jsonl"
    channel = echo.cls()
    options = echo.cls.Options.model_validate({})
    message = Message(id="m1", task_id="t1", subscription_id="s1", kind="result",
                      target=str(out), subject="Done", text="all good")
    assert channel.validate_target(str(out), options) == str(out)
    receipt = await channel.send(message, options)
    assert receipt.provider_id == "m1"
    [line] = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["text"] == "all good"


def test_a_plugin_that_fails_to_import_names_its_distribution(site: Path) -> None:
    make_dist(site, "acme-pager", "2.4.1", {"pager": "acme_pager:PagerChannel"},
              {"acme_pager": "import acme_missing_sdk  # not installed\n"})
    with pytest.raises(PluginError) as info:
        discover_plugins(entry_points_in(site))
    text = str(info.value)
    assert "'pager'" in text and "acme-pager 2.4.1" in text
    assert "ModuleNotFoundError" in text and "acme_missing_sdk" in text


def test_a_plugin_whose_module_is_missing_names_its_distribution(site: Path) -> None:
    make_dist(site, "ghost-channel", "0.0.1", {"ghost": "ghost_channel_gone:Ghost"})
    with pytest.raises(PluginError, match=r"ghost-channel 0\.0\.1 failed to import"):
        discover_plugins(entry_points_in(site))


def test_a_plugin_raising_at_import_names_its_distribution(site: Path) -> None:
    make_dist(site, "crashy", "1.0", {"crashy": "crashy_mod:Crashy"},
              {"crashy_mod": "raise RuntimeError('config file missing')\n"})
    with pytest.raises(PluginError, match=r"crashy 1\.0 .*RuntimeError: config file missing"):
        discover_plugins(entry_points_in(site))


def test_two_distributions_claiming_one_name_are_both_named(tmp_path: Path, site: Path) -> None:
    make_dist(site, "team-a-chat", "1.0", {"chat": "team_a_chat:Chat"},
              {"team_a_chat": GOOD_CHANNEL.format(cls="Chat", name="chat")})
    make_dist(site, "team-b-chat", "3.2", {"chat": "team_b_chat:Chat"},
              {"team_b_chat": GOOD_CHANNEL.format(cls="Chat", name="chat")})
    with pytest.raises(PluginError) as info:
        discover_plugins(entry_points_in(site))
    text = str(info.value)
    assert "'chat'" in text and "claimed by two distributions" in text
    assert "team-a-chat 1.0" in text and "team-b-chat 3.2" in text


def test_a_built_in_name_claimed_again_is_a_clash(site: Path) -> None:
    make_dist(site, "my-email", "0.1", {"email": "my_email:Email"},
              {"my_email": GOOD_CHANNEL.format(cls="Email", name="email")})
    with pytest.raises(PluginError) as info:
        discover_plugins()  # the directory is on sys.path: it is part of the environment
    assert "'email'" in str(info.value)
    assert "gateway-channel-email 0.1.0" in str(info.value) and "my-email 0.1" in str(info.value)


def test_the_same_distribution_seen_twice_is_not_a_clash(site: Path) -> None:
    make_dist(site, "solo", "1.0", {"solo": "solo_mod:Solo"},
              {"solo_mod": GOOD_CHANNEL.format(cls="Solo", name="solo")})
    eps = entry_points_in(site)
    plugins = discover_plugins([*eps, *eps])
    assert plugins["solo"].distribution == "solo"


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("class NotAChannel:\n    name = 'x'\n", "plain_mod:NotAChannel"),
        ("def make():\n    return None\n", "plain_mod:make"),
        ("VALUE = 3\n", "plain_mod:VALUE"),
    ],
)
def test_an_entry_point_that_is_not_a_channel_class_is_rejected(
    site: Path, source: str, value: str
) -> None:
    make_dist(site, "plain-dist", "0.3", {"plain": value}, {"plain_mod": source})
    with pytest.raises(PluginError) as info:
        discover_plugins(entry_points_in(site))
    text = str(info.value)
    assert "plain-dist 0.3" in text and value in text
    assert "not a subclass of gateway.channels.Channel" in text


async def test_the_echo_plugin_can_fail_on_purpose(site: Path, tmp_path: Path) -> None:
    from gateway.core import PermanentDeliveryError, TransientDeliveryError

    install_echo_plugin(site)
    echo = discover_plugins(entry_points_in(site))["echo"].cls()
    out = tmp_path / "out.jsonl"
    message = Message(id="m2", task_id="t1", subscription_id="s1", kind="result",
                      target=str(out), subject="Done", text="x")
    flaky = echo.Options.model_validate({"fail_first": 2})
    for _ in range(2):
        with pytest.raises(TransientDeliveryError):
            await echo.send(message, flaky)
    await echo.send(message, flaky)
    assert json.loads(out.read_text(encoding="utf-8"))["attempt"] == 3
    with pytest.raises(PermanentDeliveryError):
        await echo.send(message, echo.Options.model_validate({"fail_permanently": True}))
