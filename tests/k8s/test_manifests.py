"""Offline checks of every kustomize overlay and Helm render under deploy/k8s.

Each render is validated (built-in objects against the Kubernetes OpenAPI schemas, Restate
custom resources against the operator's CRDs) and put through the policy checks a reviewer
would make. The second half breaks copies of the renders on purpose to prove every check
actually catches what it claims to.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.k8s import k8s_support as k

KUSTOMIZE_RENDERS = [r for r in k.RENDERS if r.startswith("kustomize-")]
PRODUCTION_RENDERS = ("kustomize-production", "helm-production")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZE_RENDERS)
def test_every_overlay_renders_with_kustomize(name: str) -> None:
    kinds = {o["kind"] for o in k.render(name)}
    assert {
        "ConfigMap",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ServiceAccount",
    } <= kinds, kinds


def test_every_kustomization_under_overlays_is_rendered() -> None:
    overlays = {p.parent.name for p in (k.K8S / "overlays").glob("*/kustomization.yaml")}
    assert overlays == {"dev", "production"}, "add new overlays to k8s_support.RENDERS"


def test_dev_overlay_runs_a_single_restate_node_and_registers_the_gateway() -> None:
    objs = k.render("kustomize-dev")
    restate = k.one(objs, "StatefulSet", "restate")
    assert restate["spec"]["replicas"] == 1
    claim = restate["spec"]["volumeClaimTemplates"][0]
    mounts = restate["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert any(
        m["name"] == claim["metadata"]["name"] and m["mountPath"] == "/restate-data" for m in mounts
    ), "the Restate data directory must be on the PVC"
    image = restate["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("docker.io/restatedev/restate:"), image

    job = k.one(objs, "Job", "notification-gateway-register")
    register = job["spec"]["template"]["spec"]["containers"][0]
    _, gateway = k.gateway_container(objs)
    assert register["image"] == gateway["image"], "the Job must run the gateway's image"
    assert register["args"][0] == "register"
    args = dict(a.split("=", 1) for a in register["args"][1:])
    # Both URLs must point at Services of this render, on the right ports.
    services = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
        for s in k.find(objs, "Service")
    }
    assert args["--admin-url"] == "http://restate:9070" and 9070 in services["restate"]
    assert args["--service-url"] == "http://notification-gateway:9080"
    assert 9080 in services["notification-gateway"]


def test_production_overlay_uses_the_operator_not_a_plain_deployment() -> None:
    objs = k.render("kustomize-production")
    assert not k.find(objs, "Deployment"), "the gateway runs as a RestateDeployment"
    assert not k.find(objs, "StatefulSet"), "the operator runs the Restate nodes"
    assert not k.find(objs, "Job"), "the operator registers the gateway"
    k.one(objs, "RestateCluster", "restate")
    k.one(objs, "RestateDeployment", "notification-gateway")


def test_production_restate_deployment_carries_the_base_pod_template() -> None:
    base_template, base_gateway = k.gateway_container(k.render("kustomize-base"))
    objs = k.render("kustomize-production")
    template, gateway = k.gateway_container(objs)
    for field in (
        "image",
        "args",
        "ports",
        "startupProbe",
        "livenessProbe",
        "readinessProbe",
        "securityContext",
        "volumeMounts",
    ):
        assert gateway[field] == base_gateway[field], field
    assert template["spec"]["securityContext"] == base_template["spec"]["securityContext"]
    # Generated ConfigMap names (content hashes) must be resolved inside the custom resource too.
    configmaps = {c["metadata"]["name"] for c in k.find(objs, "ConfigMap")}
    referenced = {v["configMap"]["name"] for v in template["spec"]["volumes"] if "configMap" in v}
    referenced |= {
        e["valueFrom"]["configMapKeyRef"]["name"]
        for e in gateway["env"]
        if "configMapKeyRef" in e.get("valueFrom", {})
    }
    assert referenced and referenced <= configmaps, (referenced, configmaps)


@pytest.mark.parametrize("name", k.RENDERS)
def test_gateway_config_is_mounted_where_gateway_config_points(name: str) -> None:
    text = k.gateway_config_text(k.render(name))
    assert yaml.safe_load(text)["channels"], "empty gateway config"


def test_helm_default_config_is_the_kustomize_base_config() -> None:
    base = yaml.safe_load((k.K8S / "base" / "gateway.yaml").read_text())
    assert yaml.safe_load(k.gateway_config_text(k.render("helm-default"))) == base
    values = yaml.safe_load((k.CHART / "values.yaml").read_text())
    assert values["config"] == base


def test_helm_chart_has_the_same_objects_as_the_base() -> None:
    def kinds(objs: list[dict[str, Any]]) -> set[str]:
        return {o["kind"] for o in objs}

    assert kinds(k.render("helm-default")) == kinds(k.render("kustomize-base")) | {"Job"}
    assert kinds(k.render("helm-production")) == (
        kinds(k.render("kustomize-base")) - {"Deployment"} | {"RestateDeployment"}
    )


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------


def test_kubernetes_validate_ships_the_versions_checked() -> None:
    shipped = {
        kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()
    }
    assert set(k.KUBERNETES_VERSIONS) <= shipped


@pytest.mark.parametrize("name", k.RENDERS)
def test_rendered_objects_validate_against_their_schemas(name: str) -> None:
    objs = k.render(name)
    assert not k.validate_objects(objs)


def test_crd_copies_are_the_operators_restate_cluster_and_deployment() -> None:
    assert set(k.crd_schemas()) == {
        ("restate.dev/v1", "RestateCluster"),
        ("restate.dev/v1beta1", "RestateDeployment"),
    }
    assert (k.CRD_DIR / "LICENSE-restate-operator").is_file()


@pytest.mark.parametrize("name", PRODUCTION_RENDERS)
def test_production_renders_contain_custom_resources(name: str) -> None:
    custom = [o for o in k.render(name) if k.is_custom(o)]
    assert custom and not k.validate_objects(custom)


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", k.RENDERS)
def test_no_unpinned_or_latest_images(name: str) -> None:
    objs = k.render(name)
    assert list(k.images(objs))
    assert not k.check_images(objs)


@pytest.mark.parametrize("name", k.RENDERS)
def test_every_container_has_resources_and_probes(name: str) -> None:
    assert not k.check_resources_and_probes(k.render(name))


@pytest.mark.parametrize("name", k.RENDERS)
def test_nothing_runs_as_root(name: str) -> None:
    assert not k.check_non_root(k.render(name))


@pytest.mark.parametrize("name", k.RENDERS)
def test_no_secret_values(name: str) -> None:
    objs = k.render(name)
    assert not k.check_no_secret_values(objs)
    # Channel credentials do reach the gateway, through Secret references.
    _, gateway = k.gateway_container(objs)
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in gateway["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert {
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "SLACK_WEBHOOK_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "WEBHOOK_SECRET",
    } <= set(refs)


@pytest.mark.parametrize("name", k.RENDERS)
def test_labels_and_selectors_are_consistent(name: str) -> None:
    assert not k.check_labels(k.render(name), k.managed_by(name))


@pytest.mark.parametrize("name", k.RENDERS)
def test_restate_endpoint_only_reachable_from_restate(name: str) -> None:
    assert not k.check_restate_port_policy(k.render(name))


@pytest.mark.parametrize("name", k.RENDERS)
def test_config_secrets_are_provided_to_the_gateway(name: str) -> None:
    assert not k.check_config_env_wiring(k.render(name))


@pytest.mark.parametrize("name", k.RENDERS)
def test_gateway_serves_both_ports_with_health_endpoints(name: str) -> None:
    _, gateway = k.gateway_container(k.render(name))
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"restate": 9080, "http": 8000}
    assert gateway["args"][0] == "serve"
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = k.env_of(gateway)
    assert env["GATEWAY_CONFIG"]["value"] == "/etc/gateway/gateway.yaml"
    assert env["GATEWAY_LOG_FORMAT"]["value"] == "json"
    assert {"GATEWAY_RESTATE_INGRESS_URL", "GATEWAY_RESTATE_ADMIN_URL", "OTEL_SERVICE_NAME"} <= set(
        env
    )


@pytest.mark.parametrize("name", PRODUCTION_RENDERS)
def test_production_wires_otlp_identity_and_replicas(name: str) -> None:
    objs = k.render(name)
    _, gateway = k.gateway_container(objs)
    env = k.env_of(gateway)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"].startswith("http")
    keys = env["GATEWAY_IDENTITY_KEYS"]
    if "valueFrom" in keys:
        source = keys["valueFrom"]["configMapKeyRef"]
        value = k.one(objs, "ConfigMap", source["name"])["data"][source["key"]]
    else:
        value = keys["value"]
    assert all(key.startswith("publickeyv1_") for key in value.split(","))
    deployment = k.one(objs, "RestateDeployment")
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    assert k.one(objs, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 3
    assert deployment["spec"]["restate"]["register"] == {"cluster": "restate"}


def test_production_restate_cluster_is_replicated_over_three_nodes() -> None:
    cluster = k.one(k.render("kustomize-production"), "RestateCluster", "restate")
    assert cluster["spec"]["compute"]["replicas"] == 3
    config = tomllib.loads(cluster["spec"]["config"])
    assert config["bifrost"]["default-provider"] == "replicated"
    assert config["metadata-server"]["type"] == "replicated"
    assert config["default-replication"] >= 2
    assert cluster["spec"]["security"]["requestSigningPrivateKey"]["version"] == "v1"
    assert config["tracing-endpoint"].startswith("http")


def test_restate_images_match_the_pinned_server_version() -> None:
    pinned = json.loads((k.REPO / "package.json").read_text())["dependencies"][
        "@restatedev/restate-server"
    ]
    restate_images = [
        image
        for name in k.RENDERS
        for _, image in k.images(k.render(name))
        if "restatedev/restate:" in image
    ]
    assert restate_images
    assert {image.rsplit(":", 1)[1] for image in restate_images} == {pinned}


# --------------------------------------------------------------------------------------------
# The checks catch what they claim to (each breaks a copy of a good render)
# --------------------------------------------------------------------------------------------


def _gateway(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return k.gateway_container(objs)[1]


def _first_container(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    container: dict[str, Any] = k.one(objs, kind)["spec"]["template"]["spec"]["containers"][0]
    return container


def _ingress(objs: list[dict[str, Any]], index: int) -> dict[str, Any]:
    rule: dict[str, Any] = k.one(objs, "NetworkPolicy")["spec"]["ingress"][index]
    return rule


def _latest_tag(o: list[dict[str, Any]]) -> None:
    _gateway(o)["image"] = "ghcr.io/x/gw:latest"


def _untagged_restate(o: list[dict[str, Any]]) -> None:
    _first_container(o, "StatefulSet")["image"] = "docker.io/restatedev/restate"


def _untagged_cluster(o: list[dict[str, Any]]) -> None:
    k.one(o, "RestateCluster")["spec"]["compute"]["image"] = "restatedev/restate"


def _no_memory_limit(o: list[dict[str, Any]]) -> None:
    del _gateway(o)["resources"]["limits"]["memory"]


def _job_without_resources(o: list[dict[str, Any]]) -> None:
    del _first_container(o, "Job")["resources"]


def _no_readiness(o: list[dict[str, Any]]) -> None:
    del _gateway(o)["readinessProbe"]


def _restate_without_liveness(o: list[dict[str, Any]]) -> None:
    del _first_container(o, "StatefulSet")["livenessProbe"]


def _runs_as_root(o: list[dict[str, Any]]) -> None:
    _gateway(o)["securityContext"]["runAsUser"] = 0


def _root_allowed(o: list[dict[str, Any]]) -> None:
    for _, template in k.pod_templates(o):
        template["spec"]["securityContext"].pop("runAsNonRoot")
        for container in k.containers(template):
            container["securityContext"].pop("runAsNonRoot")


def _writable_root(o: list[dict[str, Any]]) -> None:
    _first_container(o, "Job")["securityContext"]["readOnlyRootFilesystem"] = False


def _privileged(o: list[dict[str, Any]]) -> None:
    _gateway(o)["securityContext"]["privileged"] = True


def _plain_secret_env(o: list[dict[str, Any]]) -> None:
    for env in _gateway(o)["env"]:
        if env["name"] == "SMTP_PASSWORD":
            env.pop("valueFrom")
            env["value"] = "hunter2-but-longer"


def _secret_in_config(o: list[dict[str, Any]]) -> None:
    k.one(o, "ConfigMap")["data"]["gateway.yaml"] = (
        "channels:\n  email:\n    options:\n      password: hunter2\n"
    )


def _api_key_literal(o: list[dict[str, Any]]) -> None:
    k.one(o, "Namespace")["metadata"]["annotations"] = {"note": "sk-" + "abcdefghij" * 3}


def _secret_object(o: list[dict[str, Any]]) -> None:
    o.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}}
    )


def _missing_label(o: list[dict[str, Any]]) -> None:
    del k.one(o, "Service")["metadata"]["labels"]["app.kubernetes.io/instance"]


def _service_selects_nothing(o: list[dict[str, Any]]) -> None:
    service = k.one(o, "Service", "notification-gateway-api")
    service["spec"]["selector"]["app.kubernetes.io/name"] = "gw"


def _pdb_selects_nothing(o: list[dict[str, Any]]) -> None:
    selector = k.one(o, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    selector["app.kubernetes.io/instance"] = "other"


def _hpa_targets_nothing(o: list[dict[str, Any]]) -> None:
    target = k.one(o, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    target.update(kind="Deployment", apiVersion="apps/v1")


def _restate_port_open(o: list[dict[str, Any]]) -> None:
    del _ingress(o, 0)["from"]


def _restate_port_from_a_namespace(o: list[dict[str, Any]]) -> None:
    _ingress(o, 0)["from"] = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "restate"}}}
    ]


def _restate_peer_elsewhere(o: list[dict[str, Any]]) -> None:
    peer = _ingress(o, 0)["from"][0]
    peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] = "default"


def _all_ports_open(o: list[dict[str, Any]]) -> None:
    del _ingress(o, 1)["ports"]


def _config_secret_not_provided(o: list[dict[str, Any]]) -> None:
    gateway = _gateway(o)
    gateway["env"] = [e for e in gateway["env"] if e["name"] != "WEBHOOK_SECRET"]


def _unknown_deployment_field(o: list[dict[str, Any]]) -> None:
    k.one(o, "Deployment")["spec"]["replica"] = 3


def _wrong_type(o: list[dict[str, Any]]) -> None:
    k.one(o, "Service", "notification-gateway-api")["spec"]["ports"][0]["port"] = "8000"


def _restate_deployment_typo(o: list[dict[str, Any]]) -> None:
    k.one(o, "RestateDeployment")["spec"]["restate"]["drainDelay"] = 5


def _two_registration_targets(o: list[dict[str, Any]]) -> None:
    k.one(o, "RestateDeployment")["spec"]["restate"]["register"]["url"] = "http://restate:9070"


def _bad_pod_template(o: list[dict[str, Any]]) -> None:
    _gateway(o)["imagePullPolicy"] = 3


def _cluster_without_storage(o: list[dict[str, Any]]) -> None:
    del k.one(o, "RestateCluster")["spec"]["storage"]


def _cluster_bad_toml(o: list[dict[str, Any]]) -> None:
    k.one(o, "RestateCluster")["spec"]["config"] = "[bifrost\n"


def _labels(managed: str) -> Callable[[list[dict[str, Any]]], list[str]]:
    return lambda objs: k.check_labels(objs, managed)


Mutation = Callable[[list[dict[str, Any]]], None]
Check = Callable[[list[dict[str, Any]]], list[str]]
MUTATIONS: list[tuple[str, Mutation, Check]] = [
    ("kustomize-dev", _latest_tag, k.check_images),
    ("kustomize-dev", _untagged_restate, k.check_images),
    ("kustomize-production", _untagged_cluster, k.check_images),
    ("kustomize-dev", _no_memory_limit, k.check_resources_and_probes),
    ("kustomize-dev", _job_without_resources, k.check_resources_and_probes),
    ("helm-production", _no_readiness, k.check_resources_and_probes),
    ("kustomize-dev", _restate_without_liveness, k.check_resources_and_probes),
    ("kustomize-base", _runs_as_root, k.check_non_root),
    ("helm-default", _root_allowed, k.check_non_root),
    ("kustomize-dev", _writable_root, k.check_non_root),
    ("kustomize-production", _privileged, k.check_non_root),
    ("kustomize-base", _plain_secret_env, k.check_no_secret_values),
    ("helm-default", _secret_in_config, k.check_no_secret_values),
    ("kustomize-dev", _api_key_literal, k.check_no_secret_values),
    ("kustomize-base", _secret_object, k.check_no_secret_values),
    ("kustomize-production", _missing_label, _labels("kustomize")),
    ("kustomize-dev", _service_selects_nothing, _labels("kustomize")),
    ("helm-production", _pdb_selects_nothing, _labels("Helm")),
    ("kustomize-production", _hpa_targets_nothing, _labels("kustomize")),
    ("kustomize-dev", _restate_port_open, k.check_restate_port_policy),
    ("kustomize-production", _restate_port_from_a_namespace, k.check_restate_port_policy),
    ("kustomize-production", _restate_peer_elsewhere, k.check_restate_port_policy),
    ("helm-default", _all_ports_open, k.check_restate_port_policy),
    ("kustomize-dev", _config_secret_not_provided, k.check_config_env_wiring),
    ("kustomize-base", _unknown_deployment_field, k.validate_objects),
    ("helm-default", _wrong_type, k.validate_objects),
    ("kustomize-production", _restate_deployment_typo, k.validate_objects),
    ("helm-production", _two_registration_targets, k.validate_objects),
    ("kustomize-production", _bad_pod_template, k.validate_objects),
    ("kustomize-production", _cluster_without_storage, k.validate_objects),
    ("kustomize-production", _cluster_bad_toml, k.validate_objects),
]


@pytest.mark.parametrize(
    ("name", "mutate", "check"), MUTATIONS, ids=[m.__name__.strip("_") for _, m, _ in MUTATIONS]
)
def test_checks_catch_broken_manifests(name: str, mutate: Mutation, check: Check) -> None:
    objs = k.render(name)
    assert not check(objs), f"the unbroken {name} render must pass"
    mutate(objs)
    assert check(objs), f"{mutate.__name__.strip('_')} on {name}: not caught"


def test_wrong_managed_by_is_caught() -> None:
    assert k.check_labels(k.render("helm-default"), "kustomize")


@pytest.mark.parametrize(
    "image, problem",
    [
        ("ghcr.io/x/gw", "no tag (means latest)"),
        ("ghcr.io/x/gw:latest", "tag latest"),
        ("localhost:5000/gw", "no tag (means latest)"),
        ("ghcr.io/x/gw@sha256:" + "a" * 64, None),
        ("localhost:5000/gw:1.2.3", None),
        ("ghcr.io/x/gw@sha256:abc", "malformed digest 'sha256:abc'"),
    ],
)
def test_image_pinning_rule(image: str, problem: str | None) -> None:
    assert k.image_problem(image) == problem
