"""What a real apply needs beyond valid objects: pods that only the gateway's selectors select,
an HPA that owns its replica count, Restate's traces allowed out, identity keys that are keys,
Helm defaults that point where the README installs Restate, honest NOTES and an image that exists.

(Readiness not waiting on registration is proven by running the rendered objects:
test_rehearsal.py.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.api import parse_identity_keys
from gateway.core import UserInputError
from gateway.local import free_port
from tests.k8s import k8s_support as k

SCHEMA_ERROR = "values don't meet the specifications of the schema"


def _selectors(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    """Every label selector of the render that is meant for gateway pods."""
    found = []
    for obj in objs:
        spec = obj.get("spec") or {}
        if obj["kind"] == "Service":
            found.append((k.ref(obj), spec.get("selector") or {}))
        elif obj["kind"] in ("PodDisruptionBudget", "Deployment", "RestateDeployment"):
            found.append((k.ref(obj), (spec.get("selector") or {}).get("matchLabels") or {}))
        elif obj["kind"] == "NetworkPolicy":
            found.append((k.ref(obj), spec["podSelector"].get("matchLabels") or {}))
    return found


def job_pods_selected(objs: list[dict[str, Any]]) -> list[str]:
    jobs = [(o, t) for o, t in k.pod_templates(objs) if o["kind"] == "Job"]
    return [
        f"{where} selects the pods of {k.ref(job)}"
        for job, template in jobs
        for where, selector in _selectors(objs)
        if k.selects(selector, k.template_labels(template))
    ]


@pytest.mark.parametrize("name", ["kustomize-dev", "helm-default"])
def test_registration_job_pods_are_not_gateway_pods(name: str) -> None:
    objs = k.render(name)
    assert k.find(objs, "Job"), "this render has the registration Job"
    assert job_pods_selected(objs) == []


def test_the_job_pod_check_catches_gateway_labels_on_a_job() -> None:
    objs = k.render("kustomize-dev")
    job = k.one(objs, "Job")
    _, gateway = next((o, t) for o, t in k.pod_templates(objs) if o["kind"] == "Deployment")
    job["spec"]["template"]["metadata"]["labels"].update(k.template_labels(gateway))
    assert any("PodDisruptionBudget" in p for p in job_pods_selected(objs))


@pytest.mark.parametrize("name", k.RENDERS)
def test_nothing_an_hpa_scales_sets_replicas(name: str) -> None:
    objs = k.render(name)
    for hpa in k.find(objs, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        scaled = k.one(objs, target["kind"], target["name"])
        assert "replicas" not in scaled["spec"], (
            f"{k.ref(scaled)} sets replicas under {k.ref(hpa)}: every apply resets the scale"
        )


def test_restate_cluster_may_reach_its_tracing_endpoint() -> None:
    cluster = k.one(k.render("kustomize-production"), "RestateCluster")
    config = tomllib.loads(cluster["spec"]["config"])
    endpoint = urlsplit(config["tracing-endpoint"])
    service, namespace = str(endpoint.hostname).split(".")[:2]
    rules = cluster["spec"]["security"].get("networkEgressRules") or []
    allowed = [
        rule
        for rule in rules
        if any(p.get("port") == endpoint.port for p in rule.get("ports") or [])
        and any(
            (peer.get("namespaceSelector") or {}).get("matchLabels")
            == {"kubernetes.io/metadata.name": namespace}
            for peer in rule.get("to") or []
        )
    ]
    assert allowed, f"no networkEgressRules entry lets Restate reach {service}.{namespace}:" \
                    f"{endpoint.port} (the operator's policy allows public addresses only)"


# --- identity keys ----------------------------------------------------------------------------


def _placeholder_values(tmp_path: Any, keys: list[str], **restate: Any) -> Any:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"restate": {"identityKeys": keys, **restate}}))
    return path


@pytest.mark.parametrize("key", [
    "publickeyv1_SetMeToYourRestateKey",  # the old placeholder: base58, but 16 bytes
    "publickeyv1_" + "z" * 45,  # too long for 32 bytes
])
def test_values_schema_refuses_a_key_that_is_not_32_bytes(tmp_path: Any, key: str) -> None:
    proc = k.helm_template(_placeholder_values(tmp_path, [key]))
    assert proc.returncode != 0 and SCHEMA_ERROR in proc.stderr, proc.stderr
    assert "/restate/identityKeys/0" in proc.stderr, proc.stderr


def test_values_schema_requires_identity_keys_unless_unsigned_is_explicit(tmp_path: Any) -> None:
    proc = k.helm_template(required=False)
    assert proc.returncode != 0 and SCHEMA_ERROR in proc.stderr, proc.stderr
    assert "/restate/identityKeys" in proc.stderr, proc.stderr
    unsigned = _placeholder_values(tmp_path, [], allowUnsignedRequests=True)
    proc = k.helm_template(unsigned, required=False)
    assert proc.returncode == 0, proc.stderr
    _, gateway = k.gateway_container(k.load_documents(proc.stdout))
    assert "GATEWAY_IDENTITY_KEYS" not in k.env_of(gateway)


def _identity_keys(objs: list[dict[str, Any]]) -> str:
    _, gateway = k.gateway_container(objs)
    keys = k.env_of(gateway)["GATEWAY_IDENTITY_KEYS"]
    if "valueFrom" in keys:
        source = keys["valueFrom"]["configMapKeyRef"]
        value: str = k.one(objs, "ConfigMap", source["name"])["data"][source["key"]]
        return value
    return str(keys["value"])


def test_shipped_helm_keys_are_keys_the_gateway_accepts() -> None:
    for name in ("helm-default", "helm-production"):
        assert parse_identity_keys(_identity_keys(k.render(name)))


def test_gateway_refuses_the_kustomize_placeholder_in_one_line_at_start() -> None:
    placeholder = _identity_keys(k.render("kustomize-production"))
    with pytest.raises(UserInputError):
        parse_identity_keys(placeholder)
    env = {**os.environ, "GATEWAY_IDENTITY_KEYS": placeholder}
    proc = subprocess.run([sys.executable, "-m", "gateway", "serve"], env=env, timeout=60,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert "GATEWAY_IDENTITY_KEYS" in lines[0] and "32" in lines[0], lines[0]


# --- Helm defaults, NOTES, values -------------------------------------------------------------


def _restate_namespace_in_readme() -> str:
    readme = (k.K8S / "README.md").read_text()
    match = re.search(r"helm install restate \S+restate-helm[^\n]*--namespace (\S+)", readme)
    assert match, "the README installs Restate's Helm chart"
    return match.group(1)


def test_helm_defaults_point_at_restate_where_the_readme_installs_it() -> None:
    namespace = _restate_namespace_in_readme()
    objs = k.render("helm-default")
    _, gateway = k.gateway_container(objs)
    env = k.env_of(gateway)
    for var in ("GATEWAY_RESTATE_INGRESS_URL", "GATEWAY_RESTATE_ADMIN_URL"):
        host = str(urlsplit(env[var]["value"]).hostname)
        assert host.split(".")[:2] == ["restate", namespace], f"{var} = {env[var]['value']}"
    job = k.one(objs, "Job")
    admin = next(a for a in job["spec"]["template"]["spec"]["containers"][0]["args"]
                 if a.startswith("--admin-url="))
    assert admin == f"--admin-url={env['GATEWAY_RESTATE_ADMIN_URL']['value']}"
    policy = k.one(objs, "NetworkPolicy")
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers and all(
        (p.get("namespaceSelector") or {}).get("matchLabels")
        == {"kubernetes.io/metadata.name": namespace} for p in peers
    ), peers


def _notes(*extra: str) -> str:
    proc = k.run([k.tool("helm"), "install", k.RELEASE, k.CHART, "--namespace", k.NAMESPACE,
                  "--dry-run=client", "--values", k.REQUIRED_VALUES, *extra])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_do_not_claim_the_registration_happened() -> None:
    notes = _notes()
    assert not re.search(r"\bregistered\b", notes), notes
    job = f"job/{k.RELEASE}-register"
    assert f"wait --for=condition=complete {job}" in notes
    assert "WARNING" not in notes


def test_notes_warn_when_requests_are_unsigned() -> None:
    notes = _notes("--set", "restate.identityKeys=null", "--set",
                   "restate.allowUnsignedRequests=true")
    assert "WARNING: restate.allowUnsignedRequests is true" in notes


def test_production_values_do_not_name_the_release() -> None:
    text = k.PRODUCTION_VALUES.read_text()
    assert f"app.kubernetes.io/instance: {k.RELEASE}" not in text
    # another release name: the spread constraints still select the release's own pods
    other = k.run([k.tool("helm"), "template", "elsewhere", k.CHART, "--values",
                   k.PRODUCTION_VALUES])
    assert other.returncode == 0, other.stderr
    objs = k.load_documents(other.stdout)
    template, _ = k.gateway_container(objs)
    constraints = template["spec"]["topologySpreadConstraints"]
    assert len(constraints) == 2
    for tsc in constraints:
        selector = tsc["labelSelector"]["matchLabels"]
        assert selector["app.kubernetes.io/instance"] == "elsewhere"
        assert k.selects(selector, k.template_labels(template))


# --- the image ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["kustomize-base", "kustomize-dev", "helm-default"])
def test_the_image_is_the_one_the_readme_builds_and_loads_into_kind(name: str) -> None:
    readme = (k.K8S / "README.md").read_text()
    built = re.findall(r"docker build -f deploy/k8s/Dockerfile -t (\S+) \.", readme)
    loaded = re.findall(r"kind load docker-image (\S+)", readme)
    _, gateway = k.gateway_container(k.render(name))
    assert gateway["image"] in built, (gateway["image"], built)
    assert gateway["image"] in loaded, (gateway["image"], loaded)
    assert gateway["imagePullPolicy"] == "IfNotPresent"  # a kind-loaded image is never pulled
    assert "example" not in gateway["image"]


def test_registration_job_logs_what_it_waits_for() -> None:
    # The Job retries for minutes; its log must say why, not stay empty until it gives up.
    closed = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "register", f"--admin-url={closed}",
         "--service-url=http://127.0.0.1:1", "--timeout=2"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("not registered yet, retrying for up to 2s: ConnectError")
    assert lines[-1].startswith(f"error: could not register http://127.0.0.1:1 with the "
                                f"Restate admin API at {closed}")
