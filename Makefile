# canary: progressive delivery for Kubernetes.
# `make test` needs nothing but python3 (3.11+) on the machine: it builds .venv itself.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv test unit typecheck lint-imports bench clean help

all: test

help:
	@echo "make test        create .venv, install canary[dev], run mypy --strict and every test"
	@echo "make unit        run the unit tests only (fast)"
	@echo "make typecheck   mypy --strict on canary/"
	@echo "make bench       API calls per step, idle cost, decide() latency, cache memory"
	@echo "make clean       remove .venv and caches"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

typecheck: $(STAMP)
	$(BIN)/mypy --strict canary

lint-imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest tests

test: typecheck lint-imports unit

bench: $(STAMP)
	$(BIN)/python -m bench.efficiency

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache *.egg-info
