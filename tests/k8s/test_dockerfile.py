"""Static checks of deploy/k8s/Dockerfile and the build context's .dockerignore (no Docker here)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.k8s import k8s_support as k

DOCKERFILE = k.K8S / "Dockerfile"
DOCKERIGNORE = k.REPO / ".dockerignore"


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile, continuation lines joined."""
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buffer):
            continue
        if line.endswith("\\"):
            buffer += line[:-1].rstrip() + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    assert not buffer, "dangling line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            image = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), parts[0]
            )
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(image, name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede FROM, found {keyword}"
            arg_name, _, default = args.partition("=")
            global_args[arg_name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_multi_stage_with_a_separate_runtime(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    names = [s.name for s in stages]
    assert "builder" in names and names[-1] == "runtime", names


def test_base_images_are_pinned(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = dockerfile
    stage_names = {s.name for s in stages}
    for stage in stages:
        if stage.image in stage_names:
            continue
        assert "$" not in stage.image, f"unresolved {stage.image}"
        assert k.image_problem(stage.image) is None, stage.image
    # uv in the image is the same uv version the project pins for development.
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", global_args["UV_IMAGE"])


def test_runtime_and_builder_share_the_python_image(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    # The venv's interpreter symlinks point into the builder's Python: same image required.
    _, stages = dockerfile
    by_name = {s.name: s for s in stages}
    assert by_name["builder"].image == by_name["runtime"].image


def test_builder_installs_exactly_the_lock_file(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    builder = next(s for s in stages if s.name == "builder")
    syncs = [run for run in builder.all("RUN") if "uv sync" in run]
    assert syncs, "the builder must install with uv sync"
    for run in syncs:
        for flag in ("--locked", "--no-dev", "--all-packages", "--no-editable"):
            assert flag in run, f"{flag} missing from: {run}"
    copied = " ".join(builder.all("COPY"))
    for source in ("pyproject.toml", "uv.lock", "gateway/", "plugins/", "config/"):
        assert source in copied, source


def test_runtime_has_no_build_tools_sources_or_secrets(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    for copy in runtime.all("COPY"):
        assert "--from=builder" in copy, f"runtime copies from the build context: {copy}"
    for run in runtime.all("RUN"):
        assert not re.search(r"\b(uv|pip|apt-get|apk|gcc|make|curl|wget)\b", run), run
    for stage in stages:
        for keyword in ("ARG", "ENV"):
            for args in stage.all(keyword):
                for name in re.findall(r"(\w+)=", args) or [args.split("=")[0]]:
                    assert not k.SECRET_NAME.search(name), f"{keyword} {name} in the image"


def test_runtime_user_is_numeric_non_root_and_matches_the_manifests(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    users = stages[-1].all("USER")
    assert users, "runtime stage never switches away from root"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert match, f"USER {users[-1]} must be numeric (runAsNonRoot can only verify numbers)"
    uid, gid = int(match.group(1)), int(match.group(2) or match.group(1))
    assert uid > 0 and gid > 0
    deployment_sc = k.one(k.render("kustomize-base"), "Deployment")["spec"]["template"]["spec"][
        "securityContext"
    ]
    values = yaml.safe_load((k.CHART / "values.yaml").read_text())["podSecurityContext"]
    for sc in (deployment_sc, values):
        assert (sc["runAsUser"], sc["runAsGroup"]) == (uid, gid)


def test_entrypoint_serves_both_ports(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    assert json.loads(runtime.all("ENTRYPOINT")[-1]) == ["gateway"]
    cmd = json.loads(runtime.all("CMD")[-1])
    assert cmd[0] == "serve"
    exposed = {int(p.split("/")[0]) for e in runtime.all("EXPOSE") for p in e.split()}
    _, container = k.gateway_container(k.render("kustomize-base"))
    assert exposed == {p["containerPort"] for p in container["ports"]}
    env = " ".join(runtime.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "read-only root filesystem: no .pyc writes"
    assert "GATEWAY_CONFIG=/etc/gateway/gateway.yaml" in env


# --------------------------------------------------------------------------------------------
# .dockerignore (moby/patternmatcher semantics: last match wins, a path is excluded with its
# parent directory)
# --------------------------------------------------------------------------------------------


def _compile(pattern: str) -> re.Pattern[str]:
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(f"^{regex}$")


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        rules.append((negate, _compile(pattern.strip("/"))))
    return rules


def is_ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for negate, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def rules() -> list[tuple[bool, re.Pattern[str]]]:
    assert DOCKERIGNORE.is_file(), "the build context (repository root) needs a .dockerignore"
    return dockerignore_rules(DOCKERIGNORE.read_text())


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "gateway/__init__.py",
        "gateway/cli.py",
        "plugins/email/pyproject.toml",
        "plugins/email/gateway_channel_email.py",
        "config/gateway.yaml",
    ],
)
def test_build_inputs_are_in_the_context(
    path: str, rules: list[tuple[bool, re.Pattern[str]]]
) -> None:
    assert not is_ignored(path, rules)


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".tools/bin/helm",
        "node_modules/x/package.json",
        "tests/test_core.py",
        "deploy/k8s/base/gateway.yaml",
        ".env",
        "plugins/email/.env",
        "gateway/__pycache__/cli.cpython-311.pyc",
        "plugins/sms/.venv/pyvenv.cfg",
        "notification_gateway.egg-info/PKG-INFO",
    ],
)
def test_local_state_and_secrets_stay_out_of_the_context(
    path: str, rules: list[tuple[bool, re.Pattern[str]]]
) -> None:
    assert is_ignored(path, rules)


def test_every_copied_source_exists_in_the_context(
    dockerfile: tuple[dict[str, str], list[Stage]], rules: list[tuple[bool, re.Pattern[str]]]
) -> None:
    _, stages = dockerfile
    for stage in stages:
        for copy in stage.all("COPY"):
            if "--from=" in copy:
                continue
            *sources, _dest = [a for a in copy.split() if not a.startswith("--")]
            for source in sources:
                assert not is_ignored(source.rstrip("/"), rules), f"{source} is .dockerignored"


def test_dockerignore_matcher_semantics() -> None:
    rules = dockerignore_rules("*\n!keep/\n**/*.pyc\n")
    assert is_ignored("other/file", rules)
    assert not is_ignored("keep/a/b.py", rules)
    assert is_ignored("keep/a/b.pyc", rules)
    assert is_ignored("top.pyc", rules)


def test_dockerfile_lives_in_deploy_k8s_and_builds_from_the_root() -> None:
    text = DOCKERFILE.read_text()
    assert "docker build -f deploy/k8s/Dockerfile" in text
    assert Path(k.REPO / "uv.lock").is_file()
