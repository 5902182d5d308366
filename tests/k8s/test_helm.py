"""The Helm chart: strict lint, rendering, the values schema and the NOTES."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.k8s import k8s_support as k

BAD_VALUES = sorted((k.DATA / "bad-values").glob("*.yaml"))
SCHEMA_ERROR = "values don't meet the specifications of the schema"


def _expected_path(values_file: Path) -> str:
    match = re.search(r"^# expect: (\S+)$", values_file.read_text(), re.MULTILINE)
    assert match, f"{values_file.name} must say which value it breaks (# expect: /path)"
    return match.group(1)


@pytest.mark.parametrize("values", [None, k.PRODUCTION_VALUES], ids=["default", "production"])
def test_helm_lint_strict(values: Path | None) -> None:
    cmd = [k.tool("helm"), "lint", "--strict", k.CHART, "--namespace", k.NAMESPACE,
           "--values", k.REQUIRED_VALUES]
    if values:
        cmd += ["--values", values]
    proc = k.run(cmd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", ["helm-default", "helm-production"])
def test_helm_template_renders(name: str) -> None:
    objs = k.render(name)
    modes = {"helm-default": "Deployment", "helm-production": "RestateDeployment"}
    k.one(objs, modes[name], k.RELEASE)
    # Every object is named after the release, so two releases never collide.
    assert all(obj["metadata"]["name"].startswith(k.RELEASE) for obj in objs)


def test_there_are_bad_values_files() -> None:
    assert len(BAD_VALUES) >= 8


@pytest.mark.parametrize("values", BAD_VALUES, ids=[p.stem for p in BAD_VALUES])
def test_values_breaking_the_schema_are_rejected(values: Path) -> None:
    path = _expected_path(values)
    proc = k.helm_template(values)
    assert proc.returncode != 0, f"{values.name} was accepted"
    assert SCHEMA_ERROR in proc.stderr, proc.stderr
    assert path in proc.stderr, f"expected an error at {path}:\n{proc.stderr}"
    lint = k.run([k.tool("helm"), "lint", "--strict", k.CHART, "--values", k.REQUIRED_VALUES,
                  "--values", values])
    assert lint.returncode != 0, f"helm lint accepted {values.name}"


def _schema_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((k.CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_values_schema_accepts_the_shipped_values() -> None:
    validator = _schema_validator()
    defaults = yaml.safe_load((k.CHART / "values.yaml").read_text())
    # the defaults alone lack the one value an install must give: an identity key
    assert [e.json_path for e in validator.iter_errors(defaults)] == ["$.restate.identityKeys"]
    installed = _merge(defaults, yaml.safe_load(k.REQUIRED_VALUES.read_text()))
    assert not list(validator.iter_errors(installed))
    production = _merge(defaults, yaml.safe_load(k.PRODUCTION_VALUES.read_text()))
    assert not list(validator.iter_errors(production))


def _merge(base: dict, override: dict) -> dict:
    """Helm's values merge: maps merge recursively, null deletes a key."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("values", BAD_VALUES, ids=[p.stem for p in BAD_VALUES])
def test_values_schema_is_portable_json_schema(values: Path) -> None:
    # The same verdict from an independent JSON Schema implementation (draft 7).
    defaults = yaml.safe_load((k.CHART / "values.yaml").read_text())
    required = yaml.safe_load(k.REQUIRED_VALUES.read_text())
    merged = _merge(_merge(defaults, required), yaml.safe_load(values.read_text()))
    errors = list(_schema_validator().iter_errors(merged))
    assert errors, f"{values.name} passes the schema"


def test_every_value_is_described_by_the_schema() -> None:
    schema = json.loads((k.CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((k.CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(defaults) <= set(schema["properties"])


def _notes(*values: Path, extra: tuple[str, ...] = ()) -> str:
    cmd = [
        k.tool("helm"),
        "install",
        k.RELEASE,
        k.CHART,
        "--namespace",
        k.NAMESPACE,
        "--dry-run=client",
    ]
    for v in (k.REQUIRED_VALUES, *values):
        cmd += ["--values", v]
    proc = k.run([*cmd, *extra])
    assert proc.returncode == 0, proc.stderr
    assert "NOTES:" in proc.stdout
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_say_how_to_reach_the_api() -> None:
    notes = _notes()
    assert f"port-forward svc/{k.RELEASE}-api 8000:8000" in notes
    assert f"http://{k.RELEASE}-api.{k.NAMESPACE}.svc:8000" in notes
    assert "create secret generic notification-gateway-secrets" in notes
    assert "--from-literal=SMTP_PASSWORD=" in notes
    assert "--from-literal=TWILIO_AUTH_TOKEN=" not in notes  # optional keys are not demanded


def test_production_notes_point_at_the_restate_deployment() -> None:
    notes = _notes(k.PRODUCTION_VALUES)
    assert f"get restatedeployment {k.RELEASE}" in notes
    assert "WARNING" not in notes
    # Service names in the NOTES exist in the render.
    services = {s["metadata"]["name"] for s in k.find(k.render("helm-production"), "Service")}
    assert {m for m in re.findall(r"svc/([a-z0-9-]+)", notes)} <= services


def test_notes_warn_when_operator_mode_keeps_same_namespace_peers() -> None:
    same_namespace = "restate.peers[0].namespaceSelector=null"
    notes = _notes(extra=("--set", "restate.mode=operator", "--set", same_namespace))
    assert "the NetworkPolicy will block Restate" in notes


def test_registration_job_is_a_hook_registering_the_release_service() -> None:
    objs = k.render("helm-default")
    job = k.one(objs, "Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"post-install", "post-upgrade"}
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "register"
    service = k.one(objs, "Service", k.RELEASE)
    assert f"--service-url=http://{k.RELEASE}.{k.NAMESPACE}.svc:9080" in args
    assert {p["port"] for p in service["spec"]["ports"]} == {9080}
    assert not k.find(k.render("helm-production"), "Job")


def test_config_change_rolls_the_pods() -> None:
    base = k.one(k.render("helm-default"), "Deployment")
    checksum = base["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    proc = k.helm_template(extra=("--set", "config.subscriptions=null"))
    assert proc.returncode == 0, proc.stderr
    changed = k.one(k.load_documents(proc.stdout), "Deployment")
    assert changed["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != checksum
