# payhooks: the two commands are `make run` and `make test`; both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STATE_DIR ?= .stack

.PHONY: install tools run test lint unit bench stack-up stack-down stack-status clean

# A virtualenv with the package (editable) and its test tools, pinned by constraints.txt.
# Re-installed whenever pyproject.toml or constraints.txt change.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "payhooks needs Python >= 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## tools: promtool (from Debian's prometheus package) for the alert-rule tests, installed with
## apt-get only when missing; maintainer scripts are kept from starting a Prometheus server
tools:
	@command -v promtool >/dev/null 2>&1 && exit 0; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "promtool is missing and apt-get is unavailable: install promtool (Prometheus 2.x," \
	       "https://prometheus.io/download/) and put it on PATH, then run make test again"; exit 1; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "promtool is missing: run 'sudo apt-get install prometheus' (only promtool is used)," \
	       "then make test again"; exit 1; fi; \
	echo "installing promtool: apt-get install prometheus (no service is started)"; \
	policy=/usr/sbin/policy-rc.d; made=""; \
	if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy; chmod 755 $$policy; made=1; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	status=$$?; [ -n "$$made" ] && rm -f $$policy; \
	if [ $$status != 0 ] || ! command -v promtool >/dev/null 2>&1; then \
	  echo "apt-get install prometheus failed (exit $$status); install promtool by hand"; exit 1; fi; \
	promtool --version | head -1

## run: the whole pipeline locally with a simulated Stripe flow; Ctrl-C stops what it started
run: install
	PAYHOOKS_STATE_DIR=$(STATE_DIR) $(PY) -m payhooks.devrun

## test: lint, types, and every test against real Kafka and Redis
test: install tools lint
	$(PY) -m payhooks.stack prepare
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit tests/http

## bench: receiver (R0/R2/P0) and worker (C0/C1) benchmarks on a private Kafka; each rewrites its
## own section of BENCHMARKS.md
bench: install
	$(PY) -m payhooks.stack prepare
	$(PY) -m bench.receiver --write-benchmarks
	$(PY) -m bench.worker --write-benchmarks

stack-up: install
	$(PY) -m payhooks.stack up --state-dir $(STATE_DIR)

stack-down: install
	$(PY) -m payhooks.stack down --state-dir $(STATE_DIR)

stack-status: install
	$(PY) -m payhooks.stack status --state-dir $(STATE_DIR)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
