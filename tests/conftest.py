"""Shared fixtures: a real restate-server, the gateway's endpoint, a mailbox, a webhook receiver.

Set ``GATEWAY_TEST_ALWAYS_REPLAY=1`` to make the server suspend and replay every handler at
every step (``RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT=0s``): non-determinism shows early.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest-xdist's workers inherit COLUMNS from the controller; the command line's consoles would
# fix their width to it at import, ignoring the COLUMNS each CLI test sets for its own run
os.environ.pop("COLUMNS", None)

from gateway.durable import GatewayClient, Runtime
from gateway.local import LocalEngine, Mailbox, WebhookReceiver, free_port

WEBHOOK_SECRET = "whsec_" + "dGVzdC1zZWNyZXQtZm9yLXRoZS1nYXRld2F5LXRlc3Rz"  # base64 test key

ALWAYS_REPLAY = os.environ.get("GATEWAY_TEST_ALWAYS_REPLAY") == "1"


def engine_env(always_replay: bool = False) -> dict[str, str]:
    env = {
        "RESTATE_LOG_FILTER": "warn,restate=warn",
        "RESTATE_BOOTSTRAP_NUM_PARTITIONS": "4",
        "RESTATE_DEFAULT_NUM_PARTITIONS": "4",
        "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "128 MB",
        "RESTATE_SHUTDOWN_TIMEOUT": "10s",
    }
    if always_replay:
        env["RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT"] = "0s"
    return env


def new_engine(base_dir: Path, always_replay: bool = False) -> LocalEngine:
    return LocalEngine(base_dir=base_dir, ingress_port=free_port(), admin_port=free_port(),
                       node_port=free_port(), env=engine_env(always_replay))


ENGINE_MODES = ["always-replay"] if ALWAYS_REPLAY else ["normal", "always-replay"]


@pytest.fixture(scope="session", params=ENGINE_MODES)
def restate_server(request: pytest.FixtureRequest) -> Iterator[LocalEngine]:
    """A real restate-server; every test using it runs twice: normally, and with the server
    suspending and replaying handlers at every step (non-determinism shows up there)."""
    base = Path(tempfile.mkdtemp(prefix="gateway-test-restate-"))
    engine = new_engine(base, always_replay=request.param == "always-replay")
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET).start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def client(restate_server: LocalEngine) -> Iterator[GatewayClient]:
    with GatewayClient(restate_server.ingress_url) as c:
        yield c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``edge_only`` check the HTTP edge (keys, limits, connection handling), which a
    forced replay of the handlers cannot change: their always-replay variant is deselected."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("restate_server") if callspec is not None else None
        if mode == "always-replay" and item.get_closest_marker("edge_only") is not None:
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach the tail of the restate-server log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "restate_server" in getattr(item, "fixturenames", ()):
        engine = item.funcargs.get("restate_server")  # type: ignore[attr-defined]
        if isinstance(engine, LocalEngine):
            report.sections.append(("restate-server log", engine.log_tail(60)))





TEST_CONFIG = """
agents:
  default: {model: offline}
  failing: {model: "offline:fail", max_attempts: 2}
  slow: {model: "offline:sleep=3", deadline: 1s}
  hanging: {model: "offline:sleep=30", timeout: 1s, max_attempts: 5}
  metered: {model: offline}   # used by one test only: its metrics are not shared
channels:
  email:
    plugin: email
    allow_private_targets: true   # the test mailbox listens on loopback
    options: {host: 127.0.0.1, port: MAILBOX_PORT, tls: none, from_addr: gateway@example.com}
    retry: {max_attempts: 3, initial_interval: 0.2, max_interval: 1, attempt_timeout: 10}
  webhook:
    plugin: webhook
    allow_private_targets: true   # the test receivers listen on loopback
    options: {secret: "${TEST_WEBHOOK_SECRET}"}
    retry: {max_attempts: 3, initial_interval: 0.2, max_interval: 1, attempt_timeout: 10}
  metered-webhook:             # used by one test only: its metrics are not shared
    plugin: webhook
    allow_private_targets: true   # the test receivers listen on loopback
    options: {secret: "${TEST_WEBHOOK_SECRET}"}
    retry: {max_attempts: 3, initial_interval: 0.2, max_interval: 1, attempt_timeout: 10}
  metered-email:
    plugin: email
    allow_private_targets: true   # the test mailbox listens on loopback
    options: {host: 127.0.0.1, port: MAILBOX_PORT, tls: none, from_addr: gateway@example.com}
  patient-webhook:
    plugin: webhook
    allow_private_targets: true   # the test receivers listen on loopback
    options: {secret: "${TEST_WEBHOOK_SECRET}"}
    retry: {max_attempts: 40, initial_interval: 0.5, max_interval: 3, attempt_timeout: 10}
  brief-webhook:               # five-second attempts: the attempt timeout alone cuts a stall
    plugin: webhook
    allow_private_targets: true   # the test receivers listen on loopback
    options: {secret: "${TEST_WEBHOOK_SECRET}"}
    retry: {max_attempts: 3, initial_interval: 0.2, max_interval: 1, attempt_timeout: 5}
subscriptions:
  - name: ml-team
    match: {labels: {team: ml}, outcomes: [succeeded, failed]}
    notify: [{channel: webhook, target: "RECEIVER_URL/hooks/standing-ml"}]
"""


def write_test_config(path: Path, mailbox: Mailbox, receiver: WebhookReceiver) -> Path:
    text = TEST_CONFIG.replace("MAILBOX_PORT", str(mailbox.port)).replace(
        "RECEIVER_URL", receiver.url)
    path.write_text(text)
    return path


TEST_ENV = {"TEST_WEBHOOK_SECRET": WEBHOOK_SECRET}


@pytest.fixture(scope="session")
def config_file(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox,
                webhook_receiver: WebhookReceiver) -> Path:
    return write_test_config(tmp_path_factory.mktemp("config") / "gateway.yaml", mailbox,
                             webhook_receiver)


def make_runtime(config_file: Path) -> Runtime:
    """The runtime of the in-process gateway, from a YAML file through the real loader:
    real plugins, loopback targets, fast retries, agents that succeed, fail and dawdle."""
    from gateway.channels import discover_plugins
    from gateway.config import load_config
    from gateway.durable import runtime_for

    plugins = discover_plugins()
    config = load_config(config_file, plugins=plugins, env=TEST_ENV)
    return runtime_for(config, plugins)


@pytest.fixture(scope="session")
def gateway(restate_server: LocalEngine, config_file: Path) -> Iterator[str]:
    """The gateway's Restate endpoint, served in-process and registered; yields its URL."""
    from tests.support.service import running_endpoint

    with running_endpoint(make_runtime(config_file), restate_server) as url:
        yield url
