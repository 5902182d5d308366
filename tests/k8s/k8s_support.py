"""Rendering and checking of deploy/k8s, shared by the tests in tests/k8s.

Everything here is offline: kustomize (through kubectl) and helm are the pinned binaries that
``make tools`` extracts into .tools/bin; built-in objects are validated with kubernetes-validate,
the Restate operator's custom resources with the CRD schemas copied into tests/k8s/data/crds.

The policy checks return lists of human-readable violations (empty = fine), so the tests can
both assert that the real manifests pass and that a deliberately broken copy is caught.
"""

from __future__ import annotations

import atexit
import copy
import functools
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
CHART = K8S / "helm" / "notification-gateway"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
DATA = Path(__file__).resolve().parent / "data"
# What a real install adds to the chart's defaults (an identity key): passed before any other
# values file, so those can still override it.
REQUIRED_VALUES = DATA / "required-values.yaml"
CRD_DIR = DATA / "crds"
TOOLS_BIN = REPO / ".tools" / "bin"

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion), the one the pinned kubectl
# and helm are built against, and the newest kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.30", "1.35", "1.37")
HELM_KUBE_VERSION = "1.35.0"

# kubernetes-validate re-reads and re-parses its schema files (the definitions are 1.5 MB) on
# every validate() call. They are only read, so cache them: it makes these checks ~5x faster.
_schema_contents = getattr(kubernetes_validate.utils, "schema_contents", None)
if _schema_contents is not None and not hasattr(_schema_contents, "cache_info"):
    kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=64)(_schema_contents)

RELEASE = "notification-gateway"
NAMESPACE = "notification-gateway"
GATEWAY = "notification-gateway"

RENDERS = (
    "kustomize-base",
    "kustomize-dev",
    "kustomize-production",
    "helm-default",
    "helm-production",
)

POD_TEMPLATE_KINDS = {
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "RestateDeployment",
}
LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "RestateDeployment"}
CUSTOM_GROUP = "restate.dev"
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)

# Names of environment variables / config keys that hold secrets.
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|AUTH|CREDENTIAL|WEBHOOK_URL|ACCOUNT_SID)",
    re.IGNORECASE,
)
ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
ENV_REFERENCES = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
# Shapes of real credentials that must never appear in a manifest.
SECRET_VALUE_PATTERNS = {
    "OpenAI-style API key": re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Slack webhook URL": re.compile(r"hooks\.slack\.com/services/T[A-Za-z0-9]+/"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "webhook signing secret": re.compile(r"\bwhsec_[A-Za-z0-9+/=]{16,}"),
    "Twilio auth token": re.compile(r"\bSK[0-9a-f]{32}\b"),
}


# --------------------------------------------------------------------------------------------
# Tools and rendering
# --------------------------------------------------------------------------------------------


def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path.relative_to(REPO)} is missing: run `make tools` first", pytrace=False)
    return path


@functools.cache
def _tool_env() -> dict[str, str]:
    # Keep helm away from the user's config/cache and from the network.
    home = Path(tempfile.mkdtemp(prefix="k8s-checks-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))}
    env.update(
        {
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "kubeconfig"),
        }
    )
    return env


def run(cmd: list[str | Path], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_tool_env(),
        cwd=REPO,
        check=False,
    )


def load_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(path: Path) -> list[dict[str, Any]]:
    proc = run([tool("kubectl"), "kustomize", path])
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return load_documents(proc.stdout)


def helm_template(
    *values_files: Path, extra: tuple[str, ...] = (), required: bool = True
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart with ``values_files`` (after REQUIRED_VALUES unless
    ``required`` is False)."""
    cmd: list[str | Path] = [
        tool("helm"),
        "template",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
        "--kube-version",
        HELM_KUBE_VERSION,
    ]
    for values in (REQUIRED_VALUES, *values_files) if required else values_files:
        cmd += ["--values", values]
    return run([*cmd, *extra])


@functools.cache
def _render(name: str) -> tuple[dict[str, Any], ...]:
    if name == "kustomize-base":
        docs = kustomize(K8S / "base")
    elif name == "kustomize-dev":
        docs = kustomize(K8S / "overlays" / "dev")
    elif name == "kustomize-production":
        docs = kustomize(K8S / "overlays" / "production")
    elif name in ("helm-default", "helm-production"):
        values = (PRODUCTION_VALUES,) if name == "helm-production" else ()
        proc = helm_template(*values)
        assert proc.returncode == 0, f"helm template ({name}) failed:\n{proc.stderr}"
        docs = load_documents(proc.stdout)
    else:
        raise KeyError(name)
    assert docs, f"{name} rendered no objects"
    return tuple(docs)


def render(name: str) -> list[dict[str, Any]]:
    """The objects of one render (a fresh deep copy each time, so tests may mutate it)."""
    return copy.deepcopy(list(_render(name)))


def managed_by(name: str) -> str:
    return "Helm" if name.startswith("helm-") else "kustomize"


# --------------------------------------------------------------------------------------------
# Object helpers
# --------------------------------------------------------------------------------------------


def ref(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')}/{ns}{meta.get('name')}"


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in objs
        if o.get("kind") == kind and (name is None or o["metadata"].get("name") == name)
    ]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[ref(o) for o in found]}"
    return found[0]


def is_custom(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).split("/")[0] == CUSTOM_GROUP


def pod_template(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") in POD_TEMPLATE_KINDS:
        template: dict[str, Any] = obj["spec"]["template"]
        return template
    if obj.get("kind") == "CronJob":
        template = obj["spec"]["jobTemplate"]["spec"]["template"]
        return template
    return None


def pod_templates(objs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in objs:
        template = pod_template(obj)
        if template is not None:
            yield obj, template


def containers(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = template.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def template_labels(template: Mapping[str, Any]) -> dict[str, str]:
    return dict(((template.get("metadata") or {}).get("labels")) or {})


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def gateway_container(objs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod template, container) of the gateway server (not the registration Job)."""
    found = [
        (t, c)
        for o, t in pod_templates(objs)
        if o["kind"] in LONG_RUNNING_KINDS
        for c in containers(t)
        if c["name"] == "gateway"
    ]
    assert len(found) == 1, f"expected one gateway container, found {len(found)}"
    return found[0]


def env_of(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def gateway_config_text(objs: list[dict[str, Any]]) -> str:
    """The gateway.yaml the gateway container reads (following GATEWAY_CONFIG to its volume)."""
    template, container = gateway_container(objs)
    config_path = env_of(container)["GATEWAY_CONFIG"]["value"]
    directory, key = config_path.rsplit("/", 1)
    mount = next(m for m in container.get("volumeMounts") or [] if m["mountPath"] == directory)
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == mount["name"])
    configmap = one(objs, "ConfigMap", volume["configMap"]["name"])
    text: str = configmap["data"][key]
    return text


# --------------------------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------------------------


def validate_builtin(obj: dict[str, Any], version: str) -> list[str]:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        return [f"{ref(obj)}: Kubernetes {exc.version} schema: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{ref(obj)}: {exc.message}"]
    return []


def _openapi_to_jsonschema(node: Any) -> Any:
    """CRD OpenAPI v3 schema -> JSON Schema: `nullable` becomes a "null" type."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items()}
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    return out


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every served version of the copied CRDs."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def _unknown_fields(value: Any, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    """Fields the API server would prune (silently ignore): typos and misplaced keys."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and extra is None:
            return  # a free-form object
        for key, item in value.items():
            if props and key in props:
                yield from _unknown_fields(item, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from _unknown_fields(item, extra, f"{path}.{key}")
            elif extra is not True:
                yield f"{path}.{key}: unknown field"
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{index}]")


@functools.cache
def _crd_validator(key: tuple[str, str]) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_openapi_to_jsonschema(crd_schemas()[key]))


def validate_custom(obj: dict[str, Any]) -> list[str]:
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    schema = crd_schemas().get(key)
    if schema is None:
        return [f"{ref(obj)}: no CRD schema for {key[0]} {key[1]} in {CRD_DIR.name}"]
    problems = []
    validator = _crd_validator(key)
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path)
        problems.append(f"{ref(obj)}: CRD schema: {path or '<root>'}: {error.message}")
    # apiVersion, kind and metadata are implicit in every CRD schema; the metadata is an
    # ObjectMeta, checked with the Kubernetes schema (wrapped in a ConfigMap).
    body = {
        key: value for key, value in obj.items() if key not in ("apiVersion", "kind", "metadata")
    }
    problems += [f"{ref(obj)}: {p}" for p in _unknown_fields(body, schema, "")]
    meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata") or {}}
    problems += [
        f"{ref(obj)} (metadata): {p}" for p in validate_builtin(meta, KUBERNETES_VERSIONS[-1])
    ]
    name = (obj.get("metadata") or {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name or ""):
        problems.append(f"{ref(obj)}: metadata.name is not a DNS-1123 label")
    if obj.get("kind") == "RestateDeployment":
        # The pod template is passed through to ReplicaSets unvalidated by the CRD: check it as
        # a core/v1 PodTemplate with the Kubernetes schema.
        wrapped = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": name},
            "template": obj["spec"]["template"],
        }
        for version in KUBERNETES_VERSIONS:
            problems += [
                f"{ref(obj)} (pod template): {p}" for p in validate_builtin(wrapped, version)
            ]
    if obj.get("kind") == "RestateCluster" and obj["spec"].get("config"):
        try:
            tomllib.loads(obj["spec"]["config"])
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"{ref(obj)}: spec.config is not valid TOML: {exc}")
    return problems


def validate_objects(objs: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for obj in objs:
        if is_custom(obj):
            problems += validate_custom(obj)
        else:
            for version in KUBERNETES_VERSIONS:
                problems += validate_builtin(obj, version)
    return problems


# --------------------------------------------------------------------------------------------
# Policy checks
# --------------------------------------------------------------------------------------------


def images(objs: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for obj, template in pod_templates(objs):
        for container in containers(template):
            yield f"{ref(obj)} container {container['name']}", container.get("image", "")
    for obj in find(objs, "RestateCluster"):
        yield f"{ref(obj)} compute", obj["spec"]["compute"].get("image", "")


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None."""
    if not image:
        return "no image"
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if digest:
        if not re.fullmatch(r"sha256:[a-f0-9]{64}", digest):
            return f"malformed digest {digest!r}"
        return None if tag != "latest" else "tag latest"
    if not tag:
        return "no tag (means latest)"
    if tag == "latest":
        return "tag latest"
    return None


def check_images(objs: list[dict[str, Any]]) -> list[str]:
    return [
        f"{where}: image {image!r}: {problem}"
        for where, image in images(objs)
        if (problem := image_problem(image))
    ]


def _resources_problems(where: str, resources: Mapping[str, Any] | None) -> list[str]:
    resources = resources or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    missing = [f"requests.{r}" for r in ("cpu", "memory") if r not in requests]
    missing += ["limits.memory"] if "memory" not in limits else []
    return [f"{where}: resources lack {', '.join(missing)}"] if missing else []


def check_resources_and_probes(objs: list[dict[str, Any]]) -> list[str]:
    problems = []
    for obj, template in pod_templates(objs):
        for container in containers(template):
            where = f"{ref(obj)} container {container['name']}"
            problems += _resources_problems(where, container.get("resources"))
            if obj["kind"] in LONG_RUNNING_KINDS:
                for probe in ("livenessProbe", "readinessProbe"):
                    if not container.get(probe):
                        problems.append(f"{where}: no {probe}")
    for obj in find(objs, "RestateCluster"):
        problems += _resources_problems(
            f"{ref(obj)} compute", obj["spec"]["compute"].get("resources")
        )
    return problems


def check_non_root(objs: list[dict[str, Any]]) -> list[str]:
    problems = []
    for obj, template in pod_templates(objs):
        spec = template["spec"]
        pod_sc = spec.get("securityContext") or {}
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(flag):
                problems.append(f"{ref(obj)}: {flag}")
        for volume in spec.get("volumes") or []:
            if "hostPath" in volume:
                problems.append(f"{ref(obj)}: hostPath volume {volume['name']}")
        for container in containers(template):
            where = f"{ref(obj)} container {container['name']}"
            sc = container.get("securityContext") or {}
            non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            user = sc.get("runAsUser", pod_sc.get("runAsUser"))
            seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
            if non_root is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if user == 0:
                problems.append(f"{where}: runAsUser 0")
            if (sc.get("runAsGroup", pod_sc.get("runAsGroup"))) == 0:
                problems.append(f"{where}: runAsGroup 0")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                problems.append(f"{where}: capabilities not dropped (drop: [ALL])")
            if caps.get("add"):
                problems.append(f"{where}: adds capabilities {caps['add']}")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: no RuntimeDefault seccomp profile")
    return problems


def _walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def _secret_literals_in_config(data: Any, path: str = "") -> Iterator[str]:
    """Secret-named keys of a gateway config holding something other than a ${VAR} reference."""
    if isinstance(data, dict):
        for key, item in data.items():
            here = f"{path}.{key}"
            if SECRET_NAME.search(str(key)) and isinstance(item, (str, int, float)):
                if not (isinstance(item, str) and ENV_REFERENCE.match(item.strip())):
                    yield f'{here} holds a literal value; use "${{ENV_VAR}}" from a Secret'
            yield from _secret_literals_in_config(item, here)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _secret_literals_in_config(item, f"{path}[{index}]")


def check_no_secret_values(objs: list[dict[str, Any]]) -> list[str]:
    problems = []
    for obj in objs:
        if obj.get("kind") == "Secret":
            problems.append(f"{ref(obj)}: a Secret object is rendered (reference existing ones)")
        for path, text in _walk_strings(obj):
            for what, pattern in SECRET_VALUE_PATTERNS.items():
                if pattern.search(text):
                    problems.append(f"{ref(obj)} {path}: looks like a {what}")
        if obj.get("kind") == "ConfigMap":
            for key, text in (obj.get("data") or {}).items():
                if SECRET_NAME.search(key):
                    problems.append(f"{ref(obj)} data.{key}: secret-named key in a ConfigMap")
                if key.endswith((".yaml", ".yml")):
                    problems += [
                        f"{ref(obj)} data.{key}{p}"
                        for p in _secret_literals_in_config(yaml.safe_load(text))
                    ]
    for obj, template in pod_templates(objs):
        for container in containers(template):
            for env in container.get("env") or []:
                if SECRET_NAME.search(env["name"]) and "value" in env:
                    problems.append(
                        f"{ref(obj)} container {container['name']} env "
                        f"{env['name']}: plain value for a secret (use secretKeyRef)"
                    )
                value_from = env.get("valueFrom") or {}
                if SECRET_NAME.search(env["name"]) and "secretKeyRef" not in value_from:
                    problems.append(
                        f"{ref(obj)} container {container['name']} env "
                        f"{env['name']}: secret not taken from a Secret"
                    )
    return problems


def check_labels(objs: list[dict[str, Any]], managed: str) -> list[str]:
    """Standard labels everywhere, and every selector selecting what it is meant to."""
    problems = []
    for obj in objs:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        for label in STANDARD_LABELS:
            if not labels.get(label):
                problems.append(f"{ref(obj)}: no label {label}")
        if labels.get("app.kubernetes.io/part-of") not in (None, GATEWAY):
            problems.append(f"{ref(obj)}: part-of is {labels['app.kubernetes.io/part-of']!r}")
        if labels.get("app.kubernetes.io/managed-by") not in (None, managed):
            problems.append(
                f"{ref(obj)}: managed-by is {labels['app.kubernetes.io/managed-by']!r}, "
                f"expected {managed!r}"
            )
    templates = list(pod_templates(objs))
    for obj, template in templates:
        tlabels = template_labels(template)
        olabels = (obj.get("metadata") or {}).get("labels") or {}
        for label in ("app.kubernetes.io/name", "app.kubernetes.io/instance"):
            if not tlabels.get(label):
                problems.append(f"{ref(obj)}: pod template has no label {label}")
            elif tlabels.get(label) != olabels.get(label):
                problems.append(
                    f"{ref(obj)}: pod label {label}={tlabels[label]!r} differs from "
                    f"the object's {olabels.get(label)!r}"
                )
        selector = ((obj["spec"].get("selector") or {}).get("matchLabels")) or {}
        if obj["kind"] != "Job" and not selects(selector, tlabels):
            problems.append(f"{ref(obj)}: selector {selector} does not select its pod template")
    # Gateway pods only: the selectors of the Services, PDB, NetworkPolicy and spread constraints.
    served = [template_labels(t) for o, t in templates if o["kind"] in LONG_RUNNING_KINDS]
    for obj in find(objs, "Service"):
        selector = obj["spec"].get("selector") or {}
        if not any(selects(selector, labels) for labels in served):
            problems.append(f"{ref(obj)}: selector {selector} selects no pod template")
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for obj in find(objs, kind):
            spec = obj["spec"]
            selector = (
                (spec.get("selector") or spec.get("podSelector") or {}).get("matchLabels")
            ) or {}
            if not any(selects(selector, labels) for labels in served):
                problems.append(f"{ref(obj)}: selector {selector} selects no pod template")
    for obj, template in templates:
        for tsc in template["spec"].get("topologySpreadConstraints") or []:
            selector = (tsc.get("labelSelector") or {}).get("matchLabels") or {}
            if not selects(selector, template_labels(template)):
                problems.append(
                    f"{ref(obj)}: topologySpreadConstraint selects other pods {selector}"
                )
    for obj in find(objs, "HorizontalPodAutoscaler"):
        target = obj["spec"]["scaleTargetRef"]
        matches = [
            o
            for o in objs
            if o["kind"] == target["kind"]
            and o["apiVersion"] == target["apiVersion"]
            and o["metadata"]["name"] == target["name"]
        ]
        if not matches:
            problems.append(f"{ref(obj)}: scaleTargetRef {target} is not in the render")
    return problems


def check_restate_port_policy(objs: list[dict[str, Any]]) -> list[str]:
    """The gateway's Restate endpoint port is reachable only from Restate server pods."""
    problems = []
    template, container = gateway_container(objs)
    ports = {p["name"]: p["containerPort"] for p in container.get("ports") or []}
    if "restate" not in ports:
        return ["gateway container has no port named restate"]
    gateway_labels = template_labels(template)
    policies = [
        p
        for p in find(objs, "NetworkPolicy")
        if selects(p["spec"]["podSelector"].get("matchLabels") or {}, gateway_labels)
    ]
    if not policies:
        return ["no NetworkPolicy selects the gateway pods"]
    restate_pods = [
        template_labels(t)
        for o, t in pod_templates(objs)
        if any(c["name"] == "restate" for c in containers(t))
    ]
    clusters = find(objs, "RestateCluster")
    for policy in policies:
        where = ref(policy)
        if "Ingress" not in (policy["spec"].get("policyTypes") or []):
            problems.append(f"{where}: does not restrict Ingress")
        for index, rule in enumerate(policy["spec"].get("ingress") or []):
            rule_ports = [p.get("port") for p in rule.get("ports") or []]
            covers_restate = (
                not rule_ports or "restate" in rule_ports or ports["restate"] in rule_ports
            )
            if not covers_restate:
                continue
            peers = rule.get("from") or []
            if not peers:
                problems.append(f"{where} ingress[{index}]: restate port open to every source")
                continue
            for peer in peers:
                pod_selector = (peer.get("podSelector") or {}).get("matchLabels") or {}
                if pod_selector.get("app.kubernetes.io/name") != "restate" or "ipBlock" in peer:
                    problems.append(
                        f"{where} ingress[{index}]: peer {peer} is not the Restate pods"
                    )
                    continue
                ns_selector = peer.get("namespaceSelector")
                if ns_selector is None:
                    # Same namespace: when the render has the Restate server, it must be it.
                    if restate_pods and not any(
                        selects(pod_selector, labels) for labels in restate_pods
                    ):
                        problems.append(
                            f"{where} ingress[{index}]: {pod_selector} selects no "
                            "Restate pod in the render"
                        )
                else:
                    ns = (ns_selector.get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                    # The operator runs a RestateCluster's pods in the namespace named after it,
                    # labelled app.kubernetes.io/name=restate, app.kubernetes.io/instance=<name>.
                    names = {c["metadata"]["name"] for c in clusters}
                    if not ns:
                        problems.append(
                            f"{where} ingress[{index}]: namespaceSelector matches "
                            "more than one namespace"
                        )
                    elif clusters and ns not in names:
                        problems.append(
                            f"{where} ingress[{index}]: namespace {ns} is no "
                            f"RestateCluster of the render ({sorted(names)})"
                        )
                    instance = pod_selector.get("app.kubernetes.io/instance")
                    if instance is not None and ns and instance != ns:
                        problems.append(f"{where} ingress[{index}]: instance {instance} != {ns}")
    return problems


def check_config_env_wiring(objs: list[dict[str, Any]]) -> list[str]:
    """Every ${VAR} of the gateway config is provided to the gateway container."""
    _, container = gateway_container(objs)
    provided = set(env_of(container))
    config = yaml.safe_load(gateway_config_text(objs))
    referenced = {
        name for _, text in _walk_strings(config) for name in ENV_REFERENCES.findall(text)
    }
    if not referenced:
        return ["the gateway config references no ${VAR} at all (expected channel secrets)"]
    return [
        f"gateway config references ${{{name}}} but the container has no env {name}"
        for name in sorted(referenced - provided)
    ]


def check_all_policies(objs: list[dict[str, Any]], managed: str) -> list[str]:
    return [
        *check_images(objs),
        *check_resources_and_probes(objs),
        *check_non_root(objs),
        *check_no_secret_values(objs),
        *check_labels(objs, managed),
    ]
