# Mesh Boutique. `make run` runs the whole shop locally; `make test` runs every test.
# Both set everything up first, on a fresh machine, with nothing installed by hand.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run test lint format clean bench bench-quick bench-cost bench-floor k8s-render k8s-secrets compose-up \
	compose-down .system-packages

setup: $(STAMP) .system-packages

# The Python side: a venv with the project (editable) and its test tools.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The system side, from Debian's packages when missing: redis-server for the stores, Chromium for
# the browser tests, Docker's engine, docker-compose and mmdebstrap for the compose stack.
.system-packages:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v dockerd >/dev/null 2>&1 || missing="$$missing docker.io"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v mmdebstrap >/dev/null 2>&1 || missing="$$missing mmdebstrap"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is still missing"; exit 1; }
	@[ -x /usr/bin/chromium ] || { echo "chromium is still missing"; exit 1; }
	@command -v dockerd >/dev/null 2>&1 || { echo "dockerd (docker.io) is still missing"; exit 1; }

run: setup
	$(VENV)/bin/boutique up --load

test: setup lint
	$(PY) -m pytest

# What the mesh costs on this machine, mesh on against off (docs/performance.md): the full run
# (10 to 15 minutes on 2 cores) or the quick one (a minute or two). Results go to
# results/bench-<time>/ (results.json, report.md and its charts).
bench: setup
	$(VENV)/bin/boutique bench

bench-quick: setup
	$(VENV)/bin/boutique bench --quick

# CPU-ms per request by process group as `boutique up` runs the shop, tracing on and off, three
# repeats interleaved, and issue 15's targets judged on the medians (7 to 10 minutes;
# results/cost-<time>/). REPEATS=1 for one pair of stacks (2 to 4 minutes, one sample each).
# Add PROFILE=products,gateway for py-spy flame graphs of those processes.
bench-cost: setup
	$(VENV)/bin/boutique bench --cost $(if $(REPEATS),--repeats $(REPEATS)) $(if $(PROFILE),--profile $(PROFILE))

bench-floor: setup
	$(VENV)/bin/boutique bench --floor

# The Kubernetes + Istio tree istio/ (docs/kubernetes.md), rendered from mesh/topology.yaml with
# every other rendering checked in (`boutique render`).
k8s-render: $(STAMP)
	$(VENV)/bin/boutique render

# Mint one install's secrets (user-token key, Redis users) and apply them with kubectl, after
# `kubectl apply -k istio/`; an install that has them keeps them.
k8s-secrets: $(STAMP)
	$(PY) -m mesh.k8s_secrets

# The shop under docker compose, offline: a Docker daemon of its own (state in .cache/dockerd/),
# images built from Debian's packages and a wheelhouse, then docker-compose.yml with
# containers/offline.yml. With a registry, plain `docker compose up -d --build` does it.
compose-up: setup
	$(PY) -m containers up

compose-down: $(STAMP)
	$(PY) -m containers down

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf .run var results .pytest_cache
