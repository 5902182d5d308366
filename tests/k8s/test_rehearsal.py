"""The install rehearsed from its rendered objects: the dev overlay and the Helm chart's defaults
(plus what a real install must add: an identity key, an API key) run as local processes against
a real restate-server, with the Services as loopback ports that route only to ready pods.

It passes only if the gateway's startup, readiness and liveness probes succeed as the kubelet
calls them, the registration Job exits 0, and a task submitted through the API Service delivers
to a webhook receiver. Nothing here can run a cluster; this is how we know an apply comes up
(a readiness that waits on the registration, which needs a ready pod, fails here).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from gateway.api import encode_public_key, hash_key, new_key
from gateway.local import LocalEngine, WebhookReceiver
from tests.conftest import ENGINE_MODES, WEBHOOK_SECRET
from tests.k8s import k8s_support as k
from tests.k8s import rehearsal as r

INSTALLS = ("kustomize-dev", "helm-default")
#: what the Secret notification-gateway-secrets holds in the rehearsal
SECRETS = {"SMTP_USERNAME": "gateway", "SMTP_PASSWORD": "rehearsal-only",
           "WEBHOOK_SECRET": WEBHOOK_SECRET}
#: Restate's own Helm chart, released as "restate" in the namespace "restate" (README)
RESTATE_CHART_SERVICE = ("restate", "restate", {8080: "ingress", 9070: "admin"})
JOB_BOUND = 120.0  # seconds: the Job must complete well within its activeDeadlineSeconds


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="k8s-rehearsal-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver(secret=WEBHOOK_SECRET).start()
    yield hooks
    hooks.stop()


def _signing_key(workdir: Path) -> tuple[Path, str]:
    """A request signing key for restate-server (PEM file) and its publickeyv1_ form."""
    private = Ed25519PrivateKey.generate()
    pem = workdir / "request-signing.pem"
    pem.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return pem, encode_public_key(raw)


def _render(install: str, identity_key: str) -> tuple[list[dict[str, Any]], str]:
    if install == "kustomize-dev":
        objs = k.render(install)
        return objs, k.one(objs, "Namespace")["metadata"]["name"]
    proc = k.helm_template(required=False,
                           extra=("--set", f"restate.identityKeys[0]={identity_key}"))
    assert proc.returncode == 0, proc.stderr
    return k.load_documents(proc.stdout), k.NAMESPACE


def _configure(objs: list[dict[str, Any]], api_key: str) -> None:
    """The operator's edits of gateway.yaml a real install needs: an API key (the shipped file
    has none, so the API refuses every call), and, only because the rehearsal's webhook
    receiver is on loopback, private targets for the webhook channel."""
    template, container = k.gateway_container(objs)
    path = k.env_of(container)["GATEWAY_CONFIG"]["value"]
    directory, key = path.rsplit("/", 1)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == mount["name"])
    configmap = k.one(objs, "ConfigMap", volume["configMap"]["name"])
    config = yaml.safe_load(configmap["data"][key])
    config.setdefault("api", {})["keys"] = [{"name": "rehearsal", "hash": hash_key(api_key)}]
    config["channels"]["webhook"]["options"]["allow_private_targets"] = True
    configmap["data"][key] = yaml.safe_dump(config)


def _restate_settings(objs: list[dict[str, Any]]) -> dict[str, str]:
    """The rendered Restate server's RESTATE_* settings, where it is in the render (its data
    directory and addresses are this machine's)."""
    found = [c for o, t in k.pod_templates(objs) for c in k.containers(t)
             if c["name"] == "restate"]
    if not found:
        return {}
    local = {"RESTATE_BASE_DIR", "RESTATE_ADVERTISED_ADDRESS", "RESTATE_BIND_ADDRESS"}
    env = {e["name"]: str(e["value"]).replace("$(POD_NAME)", "restate-0")
           for e in found[0].get("env") or [] if "value" in e}
    return {name: value for name, value in env.items()
            if name.startswith("RESTATE_") and name not in local}


def _wire_restate(objs: list[dict[str, Any]], namespace: str, engine: LocalEngine,
                  network: r.Network) -> None:
    by_name = {"ingress": engine.ingress_port, "admin": engine.admin_port,
               "node": engine.node_port}
    restate_pods = [(o, t) for o, t in k.pod_templates(objs)
                    if any(c["name"] == "restate" for c in k.containers(t))]
    if not restate_pods:
        name, ns, ports = RESTATE_CHART_SERVICE
        network.add(name, ns, {port: by_name[target] for port, target in ports.items()})
        return
    obj, template = restate_pods[0]
    spec = next(c for c in k.containers(template) if c["name"] == "restate")
    # the Restate pod's own probes, as the kubelet would call them on the running server
    pod = r.Container(obj, template, spec, Path(), {
        p["containerPort"]: by_name[p["name"]] for p in spec["ports"]})
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        if kind in spec:
            result = r.probe(pod, kind)
            assert result.ok, f"the Restate pod's {kind} fails: {result}"
    for service in k.find(objs, "Service"):
        if k.selects(service["spec"].get("selector") or {}, k.template_labels(template)):
            network.add(service["metadata"]["name"], namespace,
                        {p["port"]: by_name[p["targetPort"]] for p in service["spec"]["ports"]})


@pytest.mark.parametrize("mode", ENGINE_MODES)
@pytest.mark.parametrize("install", INSTALLS)
def test_rendered_install_comes_up_and_delivers(install: str, mode: str, workdir: Path,
                                                receiver: WebhookReceiver) -> None:
    pem, identity_key = _signing_key(workdir)
    api_key = new_key()
    objs, namespace = _render(install, identity_key)
    _configure(objs, api_key)

    settings = _restate_settings(objs)
    if install == "helm-default":  # the chart requires request identity: Restate signs
        settings["RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"] = str(pem)
    if mode == "always-replay":
        settings["RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT"] = "0s"
    engine = LocalEngine(base_dir=workdir / "restate", ingress_port=r.pick_port(),
                         admin_port=r.pick_port(), node_port=r.pick_port(), env=settings)
    network = r.Network(namespace)
    proxies = r.ServiceProxies()
    engine.start()
    with r.stopping(engine, proxies):
        if install == "helm-default":  # the key the README says to copy from the server's log
            assert f'"{identity_key}"' in engine.log_path.read_text(errors="replace")
        _wire_restate(objs, namespace, engine, network)

        # the gateway pod: one replica of the rendered Deployment
        deployment = next(o for o in objs if o["kind"] == "Deployment")
        template, spec = k.gateway_container(objs)
        gateway = r.Container(deployment, template, spec, workdir / "gateway",
                              {p["containerPort"]: r.pick_port() for p in spec["ports"]})
        kubelet = r.Kubelet(gateway)
        for service in k.find(objs, "Service"):
            if k.selects(service["spec"].get("selector") or {}, k.template_labels(template)):
                network.add(service["metadata"]["name"], namespace, {
                    p["port"]: proxies.add(gateway.local_port(p["targetPort"]),
                                           lambda: kubelet.ready)
                    for p in service["spec"]["ports"]})

        pod_env = gateway.env(objs, SECRETS, network, "notification-gateway-0")
        # the pod's network namespace is this machine's loopback
        pod = r.Process([*gateway.argv(network), "--host=127.0.0.1"], pod_env,
                        workdir / "gateway.log")

        job_obj = k.one(objs, "Job")
        job_template = job_obj["spec"]["template"]
        job_spec = job_template["spec"]["containers"][0]
        job = r.Container(job_obj, job_template, job_spec, workdir / "job")
        job_run = r.Process(job.argv(network), job.env(objs, SECRETS, network, "register-0"),
                            workdir / "job.log")
        assert not network.unresolved, (
            f"URLs naming no Service of the install: {sorted(network.unresolved)}")

        with r.stopping(pod.start(), kubelet.start(), job_run.start()):
            # a pod that exits is a crash loop: no point waiting for the Job then
            r.wait_until(lambda: not job_run.running or not pod.running, JOB_BOUND)
            assert pod.running, f"the gateway exited: {pod.tail()}"
            code = job_run.wait(1)
            logs = f"\n--- gateway\n{pod.tail()}\n--- job\n{job_run.tail()}"
            assert code == 0, (f"the registration Job did not complete (exit {code}); last "
                               f"readiness probe: {kubelet.last('readinessProbe')}{logs}")
            assert r.wait_until(lambda: kubelet.ready and kubelet.passed("livenessProbe"), 30), (
                f"probes: {kubelet.last('readinessProbe')} {kubelet.last('livenessProbe')}"
                f"{logs}")

            api_port = network.services[(f"{k.RELEASE}-api", namespace)][8000]
            task_id = f"rehearsal-{uuid.uuid4().hex[:12]}"
            created = httpx.post(
                f"http://127.0.0.1:{api_port}/v1/tasks", timeout=30,
                headers={"authorization": f"Bearer {api_key}"},
                json={"task_id": task_id, "prompt": "Rehearse the release",
                      "callback_url": f"{receiver.url}/hooks/{task_id}"})
            assert created.status_code == 201, created.text
            delivered = r.wait_until(lambda: any(
                h.path == f"/hooks/{task_id}" and h.verified for h in receiver.delivered()), 90)
            logs = f"\n--- gateway\n{pod.tail()}\n--- restate\n{engine.log_tail(30)}"
            assert delivered, f"the task's webhook never arrived{logs}"
            for kind in ("readinessProbe", "livenessProbe"):
                last = kubelet.last(kind)
                assert last is not None and last.ok, f"{kind} after the delivery: {last}{logs}"
