"""restate-server's own spans of a task, exported to a loopback OTLP receiver, next to the
gateway's: where Restate lets a span join the task's trace it does, and where Restate only
links (a one-way send starts a new trace linked to its sender), the link leads back to it.

What restate-server 1.7 does, as measured here:

- an ingress call with a ``traceparent``: its ``ingress`` span is a child of it, and the
  invocation's ``invocation-start``/``-attempt``/``-end`` spans hang under that: they join;
- a request-response call between handlers (``ctx.object_call``): a child of the caller's
  ``invocation-attempt``: joins;
- a one-way send (``ctx.workflow_send``, ``ctx.object_send``): a new trace whose root
  ``invocation-start`` links to the sender's ``invocation-attempt``, whatever ``traceparent``
  the send carries: only linked.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan

from gateway.core.models import TaskRequest
from gateway.durable.client import GatewayClient
from gateway.local import LocalEngine, free_port
from gateway.local.sinks import Mailbox, WebhookReceiver
from gateway.observability.trace import stable_trace_id
from tests.api.conftest import KEYS, api_config_text, load_api
from tests.api.helpers import finished, new_id, poll
from tests.conftest import engine_env
from tests.observability.conftest import Traced, attrs
from tests.observability.test_up_export import OtlpReceiver
from tests.support.service import register, running_api

pytestmark = [pytest.mark.restate, pytest.mark.slow]

TARGET = "restate.invocation.target"


@dataclass(frozen=True)
class Exported:
    """One span as a collector received it (ids in hex)."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    links: tuple[tuple[str, str], ...]
    target: str


class Collector(OtlpReceiver):
    """The loopback OTLP receiver, keeping parents, links and the invocation target."""

    def __init__(self) -> None:
        self.exported: list[Exported] = []
        super().__init__()

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        target = next((a.value.string_value for a in span.attributes
                                       if a.key == TARGET), "")
                        self.exported.append(Exported(
                            service, span.name, span.trace_id.hex(), span.span_id.hex(),
                            span.parent_span_id.hex(),
                            tuple((link.trace_id.hex(), link.span_id.hex())
                                  for link in span.links), target))

    def about(self, task_id: str) -> list[Exported]:
        with self.lock:
            return [s for s in self.exported if f"/{task_id}/" in s.target]


@dataclass
class TracedRestate:
    collector: Collector
    http: httpx.Client
    ingress_url: str


@pytest.fixture(scope="module")
def traced_restate(traced: Traced, gateway: str, restate_server: LocalEngine,
                   mailbox: Mailbox, webhook_receiver: WebhookReceiver,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedRestate]:
    """A restate-server exporting its spans to a loopback collector (in the engine mode of
    this run), the session's gateway registered with it, and an API in front of it."""
    collector = Collector()
    always_replay = "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT" in restate_server.env
    env = {**engine_env(always_replay),
           "RESTATE_TRACING_ENDPOINT": f"otlp+{collector.url}/v1/traces"}
    base = Path(tempfile.mkdtemp(prefix="gateway-test-otlp-"))
    engine = LocalEngine(base_dir=base, ingress_port=free_port(), admin_port=free_port(),
                         node_port=free_port(), env=env)
    engine.start()
    path = tmp_path_factory.mktemp("restate-trace") / "gateway.yaml"
    path.write_text(api_config_text(mailbox, webhook_receiver))
    runtime, settings = load_api(path)
    try:
        register(engine, gateway)
        with running_api(settings, runtime, engine) as api_url, httpx.Client(
                base_url=api_url, timeout=30,
                headers={"authorization": f"Bearer {KEYS.full}"}) as http:
            yield TracedRestate(collector, http, engine.ingress_url)
    finally:
        engine.stop()
        collector.stop()
        shutil.rmtree(base, ignore_errors=True)


def _handler(span: Exported) -> str:
    return span.target.rsplit("/", 1)[-1]


def _ended(spans: list[Exported], handler: str) -> int:
    return sum(1 for s in spans if s.name.startswith("invocation-end") and _handler(s) == handler)


def _reachable(task_trace: str, spans: list[Exported], gateway: list[ReadableSpan]) -> set[str]:
    """The traces an operator reaches from the task's trace by following links: those the
    gateway's spans in it link to, and those whose spans link into a reached one."""
    reached = {task_trace}
    links = [(f"{s.context.trace_id:032x}", f"{link.context.trace_id:032x}")
             for s in gateway for link in s.links]
    links += [(s.trace_id, trace) for s in spans for trace, _ in s.links]
    while True:
        more = {b for a, b in links if a in reached} | {a for a, b in links if b in reached}
        if more <= reached:
            return reached
        reached |= more


def test_every_restate_span_of_a_task_joins_its_trace_or_links_back_to_it(
        traced_restate: TracedRestate, traced: Traced) -> None:
    http, collector = traced_restate.http, traced_restate.collector
    task_id = new_id("otlp")
    r = http.post("/v1/tasks", json={"task_id": task_id, "prompt": "Trace me",
                                     "subscriptions": [f"{task_id}@example.com"]})
    assert r.status_code == 201, r.text
    poll(http, task_id, finished, timeout=60)
    # a subscriber added after the task finished
    r = http.post(f"/v1/tasks/{task_id}/subscriptions", json=f"{task_id}-late@example.com")
    assert r.status_code == 201, r.text
    status = poll(http, task_id, lambda d: finished(d) and len(d["deliveries"]) == 2, timeout=60)
    assert [d["state"] for d in status["deliveries"]] == ["delivered", "delivered"], status

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # restate-server exports in batches
        spans = collector.about(task_id)
        if (_ended(spans, "run") and _ended(spans, "on_notify") >= 2
                and _ended(spans, "record") >= 1 and _ended(spans, "subscribe")):
            break
        time.sleep(0.2)
    spans = collector.about(task_id)

    def ours(s: ReadableSpan) -> bool:
        return attrs(s).get("gateway.task.id") == task_id

    gateway_spans = traced.wait_spans(
        lambda found: sum(1 for s in found if ours(s)
                          and s.name == "AsyncNotificationsAgent/on_notify") >= 2)
    [run] = [s for s in gateway_spans if ours(s) and s.name == "AsyncNotificationsAgent/run"]
    task_trace = f"{run.context.trace_id:032x}"
    in_task = [s for s in gateway_spans if s.context.trace_id == run.context.trace_id]
    assert Counter(s.name for s in in_task if ours(s))["AsyncNotificationsAgent/on_notify"] == 2

    # joined: the ingress call that started the task, and every span of its run
    started = [s for s in spans if _handler(s) == "run"]
    assert {s.name.split(" ")[0] for s in started} >= {
        "ingress", "invocation-start", "invocation-attempt", "invocation-end"}, started
    assert {s.trace_id for s in started} == {task_trace}, started
    ingress = next(s for s in started if s.name.startswith("ingress"))
    accept = next(s for s in in_task if s.name == "accept task")
    assert ingress.parent_id == f"{accept.context.span_id:016x}"

    # linked: each on_notify and each receipt starts a trace of its own (a one-way send),
    # its root linked to the invocation that sent it
    by_id = {s.span_id: s for s in spans}
    for handler in ("on_notify", "record"):
        roots = [s for s in spans if _handler(s) == handler
                 and s.name.startswith("invocation-start")]
        assert roots, handler
        for root in roots:
            assert root.parent_id in ("", "0" * 16) and root.links, root
            sender = by_id.get(root.links[0][1])
            assert sender is not None and sender.name.startswith("invocation-attempt"), root
    # the task's own subscriber's on_notify links straight into the task's trace
    own = [s for s in spans if _handler(s) == "on_notify"
           and s.name.startswith("invocation-start") and s.links[0][0] == task_trace]
    assert len(own) == 1, spans

    # and the gateway's span of each on_notify, in the task's trace, links to Restate's span
    # of the attempt that delivered
    notifies = [s for s in in_task if ours(s) and s.name == "AsyncNotificationsAgent/on_notify"]
    for notify in notifies:
        [link] = [link for link in notify.links
                  if (link.attributes or {}).get("gateway.link") == "restate invocation"]
        attempt = by_id.get(f"{link.context.span_id:016x}")
        assert attempt is not None and attempt.name.startswith("invocation-attempt"), notify
        assert _handler(attempt) == "on_notify"
        assert attempt.trace_id == f"{link.context.trace_id:032x}" != task_trace

    # every span about the task is in its trace or reached from it by links (the reads of
    # `status` and the receipts' `list` belong to the request that asked)
    reached = _reachable(task_trace, spans, in_task)
    lost = [s for s in spans if s.trace_id not in reached
            and _handler(s) not in ("status", "list")]
    assert not lost, lost

    # nothing twice, also when every step was replayed
    assert not [i for i, n in Counter(s.span_id for s in spans).items() if n > 1]
    assert not [i for i, n in Counter(s.context.span_id for s in in_task).items() if n > 1]
    for handler in ("run", "on_notify", "subscribe"):
        ends = _ended(spans, handler)
        assert ends == (2 if handler == "on_notify" else 1), (handler, ends)


def test_a_task_started_from_the_command_line_is_one_trace_derived_from_its_id(
        traced_restate: TracedRestate, traced: Traced) -> None:
    collector = traced_restate.collector
    task_id = new_id("otlp-cli")
    with GatewayClient(traced_restate.ingress_url) as client:
        client.submit(task_id, TaskRequest.parse({
            "prompt": "Trace me", "subscriptions": [f"{task_id}@example.com"]}))
        assert client.wait(task_id, 60).deliveries[0].state.value == "delivered"
        client.subscribe(task_id, f"{task_id}-late@example.com")
        deadline = time.monotonic() + 60
        states: list[str] = []
        while time.monotonic() < deadline and states != ["delivered", "delivered"]:
            states = [d.state.value for d in client.wait(task_id, 60).deliveries]
            time.sleep(0.1)
        assert states == ["delivered", "delivered"]
    task_trace = f"{stable_trace_id(task_id):032x}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = collector.about(task_id)
        if _ended(spans, "run") and _ended(spans, "subscribe") and _ended(spans, "status"):
            break
        time.sleep(0.2)
    spans = collector.about(task_id)
    # the start, the later subscriber and every status read are calls through the ingress:
    # all in the trace derived from the task id, and so is the gateway's run
    for handler in ("run", "subscribe", "status"):
        joined = [s for s in spans if _handler(s) == handler]
        assert joined and {s.trace_id for s in joined} == {task_trace}, (handler, joined)
    found = traced.wait_spans(lambda found: any(
        s.name == "AsyncNotificationsAgent/run" and attrs(s).get("gateway.task.id") == task_id
        for s in found))
    [run] = [s for s in found if s.name == "AsyncNotificationsAgent/run"
             and attrs(s).get("gateway.task.id") == task_id]
    assert f"{run.context.trace_id:032x}" == task_trace
    # the on_notify of each subscriber (a one-way send) links back into it
    roots = [s for s in spans if _handler(s) == "on_notify"
             and s.name.startswith("invocation-start")]
    assert len(roots) == 2 and all(s.links[0][0] == task_trace for s in roots), roots


def test_a_task_started_on_the_ingress_without_a_traceparent_gets_the_trace_of_its_id(
        traced_restate: TracedRestate, traced: Traced) -> None:
    collector = traced_restate.collector
    task_id = new_id("otlp-curl")
    r = httpx.post(f"{traced_restate.ingress_url}/AsyncNotificationsAgent/{task_id}/run/send",
                   json={"prompt": "Trace me", "subscriptions": [f"{task_id}@example.com"]},
                   timeout=30)
    assert r.status_code == 202, r.text

    def ours(s: ReadableSpan) -> bool:
        return attrs(s).get("gateway.task.id") == task_id

    found = traced.wait_spans(lambda found: any(
        ours(s) and s.name == "AsyncNotificationsAgent/on_notify" for s in found), timeout=60)
    mine = [s for s in found if ours(s)]
    assert {s.name for s in mine} >= {"AsyncNotificationsAgent/run",
                                      "AsyncNotificationsAgent/on_notify"}, mine
    # the gateway's spans: one trace, derived from the task id
    assert {s.context.trace_id for s in mine} == {stable_trace_id(task_id)}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _ended(collector.about(task_id), "on_notify"):
        time.sleep(0.2)
    spans = collector.about(task_id)
    # Restate's call from curl stays in a trace Restate started (as the README says), and the
    # on_notify its run sent links into that one
    started = {s.trace_id for s in spans if _handler(s) == "run"}
    assert len(started) == 1 and started != {f"{stable_trace_id(task_id):032x}"}, spans
    roots = [s for s in spans if _handler(s) == "on_notify"
             and s.name.startswith("invocation-start")]
    assert len(roots) == 1 and roots[0].links[0][0] in started, roots
