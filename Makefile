# canary: progressive delivery for Kubernetes.
# `make test` and `make demo` need python3 (3.11+), the Go toolchain and apt on the machine: they
# build .venv, the Kubernetes binaries (cached under ~/.cache/canary-e2e) and install the Debian
# packages (etcd, Prometheus) themselves.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv test unit e2e chaos typecheck lint-imports bench clean help demo cluster-build cluster-up cluster-down docs-tables argocd-snippet

all: test

help:
	@echo "make test        create .venv, build the local control plane, run mypy --strict, unit and e2e tests"
	@echo "make demo        the product on the local control plane: a healthy and a faulty release"
	@echo "                 through a real Traefik routing real HTTP requests (GATEWAY=mesh: the simulated mesh)"
	@echo "make unit        run the unit tests only (fast)"
	@echo "make e2e         run the end-to-end scenarios only (E2E_KUBECONFIG=... to use another cluster)"
	@echo "make chaos       the whole fault suite at full size (kills, freezes, outages), with its figures"
	@echo "make cluster-up  start the local control plane in the background; prints the KUBECONFIG"
	@echo "make cluster-down stop it"
	@echo "make typecheck   mypy --strict on canary/, e2e/ and the dashboard builder"
	@echo "make bench       API calls per step, idle cost, decide() latency, cache memory; then whole releases"
	@echo "                 decided by the Flagger rule and the judge on seeded simulated traffic (bench/decisions.py)"
	@echo "                 then 1000 Canaries, 100 of them releasing, on the local control plane (bench/scale.py),"
	@echo "                 and the sharding scenario at full size (3 replicas, 3,000 Canaries)"
	@echo "make clean       remove .venv and caches"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

typecheck: $(STAMP)
	$(BIN)/mypy --strict canary e2e integrations/grafana

lint-imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest tests

# Against an existing cluster (E2E_KUBECONFIG) only Prometheus is needed here.
cluster-build:
	@e2e/cluster/build.sh $${E2E_KUBECONFIG:+--data-plane-only} > /dev/null

e2e: $(STAMP) cluster-build
	$(BIN)/python -m pytest e2e -p no:cacheprovider --durations=15

# The fault suite (pytest marker `chaos`): `make e2e` runs it at a small size, this at full size
# (E2E_CHAOS=full: more kills, longer outages). -rP prints each passed scenario's figures.
chaos: $(STAMP) cluster-build
	E2E_CHAOS=full $(BIN)/python -m pytest e2e -m chaos -p no:cacheprovider -rP

# cluster-build first: some unit tests (tests/e2e_support) run the real Prometheus it installs.
test: typecheck lint-imports cluster-build unit e2e

# Through a real Traefik (real HTTP, Traefik's own metrics); GATEWAY=mesh: the simulated mesh.
demo: $(STAMP) cluster-build
	$(BIN)/python -m e2e.demo $(if $(GATEWAY),--gateway $(GATEWAY))

cluster-up: $(STAMP) cluster-build
	$(BIN)/python -m e2e.cluster up

cluster-down: $(STAMP)
	$(BIN)/python -m e2e.cluster down

# docs/api.md's tables of Flagger's fields, from canary/domain/flagger_fields.py.
docs-tables: $(STAMP)
	$(BIN)/python -m tests.crds.flagger_table

# integrations/argocd/argocd-cm.yaml from the Lua files beside it (tests/argocd checks they agree).
argocd-snippet: $(STAMP)
	$(BIN)/python -m e2e.harness.argocd_snippet

# bench.scale needs the local control plane and Prometheus (cluster-build); it takes about 15 minutes at
# its default size (1000 Canaries, 100 progressing) and prints its figures against issue 13's targets.
# Then the sharding scenario at the issue's full size (3 replicas, 3,000 Canaries; `make test` runs 60).
bench: $(STAMP) cluster-build
	$(BIN)/python -m bench.efficiency
	$(BIN)/python -m bench.decisions
	$(BIN)/python -m bench.scale
	E2E_SHARDING=full $(BIN)/python -m pytest e2e/test_sharding.py -p no:cacheprovider -rP

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache *.egg-info
