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

from gateway.client import GatewayClient
from gateway.engine import LocalEngine, free_port, register_deployment
from gateway.local_sinks import Mailbox, WebhookReceiver
from gateway.runtime import Runtime

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


def register(engine: LocalEngine, service_url: str) -> None:
    register_deployment(engine.admin_url, service_url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach the tail of the restate-server log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "restate_server" in getattr(item, "fixturenames", ()):
        engine = item.funcargs.get("restate_server")  # type: ignore[attr-defined]
        if isinstance(engine, LocalEngine):
            report.sections.append(("restate-server log", engine.log_tail(60)))





def make_runtime(mailbox: Mailbox) -> Runtime:
    """The runtime of the in-process gateway: real plugins, loopback targets, fast retries,
    and agents that succeed, fail and dawdle."""
    from gateway.agent import AgentSpec, build_agent
    from gateway.channels import Channels, discover_plugins
    from gateway.models import RetryPolicy
    from gateway.runtime import Runtime, redactor

    fast = RetryPolicy(max_attempts=3, initial_interval=0.2, max_interval=1.0, attempt_timeout=10)
    configured = {
        "email": ("email", {"host": "127.0.0.1", "port": mailbox.port, "tls": "none",
                            "from_addr": "gateway@example.com"}, fast),
        "webhook": ("webhook", {"secret": WEBHOOK_SECRET, "allow_private_targets": True}, fast),
    }
    agents = {
        "default": build_agent(AgentSpec("default")),
        "failing": build_agent(AgentSpec("failing", "offline:fail", max_attempts=2)),
        "slow": build_agent(AgentSpec("slow", "offline:sleep=3", deadline=1.0)),
    }
    return Runtime(channels=Channels.from_plugins(discover_plugins(), configured), agents=agents,
                   redact=redactor([WEBHOOK_SECRET]))


@pytest.fixture(scope="session")
def gateway(restate_server: LocalEngine, mailbox: Mailbox) -> Iterator[str]:
    """The gateway's Restate endpoint, served in-process and registered; yields its URL."""
    from gateway.service import create_app
    from tests.support.service import ServiceThread

    runtime = make_runtime(mailbox)
    service = ServiceThread(create_app(runtime), cleanup=runtime.channels.aclose).start()
    register(restate_server, service.url)
    try:
        yield service.url
    finally:
        service.stop()
