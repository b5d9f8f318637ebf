# payhooks: the two commands are `make run` and `make test`; both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STATE_DIR ?= .stack

.PHONY: install run test lint unit bench stack-up stack-down stack-status clean

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

## run: the whole pipeline locally with a simulated Stripe flow; Ctrl-C stops what it started
run: install
	PAYHOOKS_STATE_DIR=$(STATE_DIR) $(PY) -m payhooks.devrun

## test: lint, types, and every test against real Kafka and Redis
test: install lint
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
