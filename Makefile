# Accord — the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PKGS := libs/common services/sync services/presence services/edge libs/cli clients/python
PYTEST_ARGS ?=

.PHONY: install run test test-embedded services protos lint check-protos bench clean

install: $(STAMP)

$(STAMP): requirements-dev.txt $(addsuffix /pyproject.toml,$(PKGS))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation $(addprefix -e ,$(PKGS))
	@touch $(STAMP)

run: install
	$(VENV)/bin/accord dev

# Every test; PostgreSQL and Redis are started (or installed) first.
test: install services
	SYNC_HYPOTHESIS_PROFILE=sync-ci $(PY) -m pytest $(PYTEST_ARGS)

# Only the tests that need no servers.
test-embedded: install
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

services:
	@bash scripts/ensure-services.sh
	@if [ -f scripts/ensure-tools.sh ]; then bash scripts/ensure-tools.sh; fi

protos: install
	$(PY) scripts/gen_protos.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Security checks (SECURITY.md): ruff's S rules, a secret scan, hadolint, the chart's security
# context and dependency vulnerability scans (one line each where their database is unreachable).
.PHONY: audit
audit: install
	@bash scripts/audit.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Whole-stack benchmark (bench/, docs/benchmarks.md "Whole stack"): every system and scenario,
# 3 repetitions — long (hours). bench-smoke: a short S1+S2 on Accord and the floor (< 2 min).
.PHONY: bench-smoke bench-sync
bench: install services
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	cd bench/peers && npm ci --no-audit --no-fund --loglevel=error
	$(PY) -m bench.run $(BENCH_ARGS)

# The sync engine alone against PostgreSQL (docs/benchmarks.md "Sync engine"); about 3 minutes.
bench-sync: install services
	$(PY) -m bench.sync $(BENCH_ARGS)

bench-smoke: install services
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	$(PY) -m bench.run --smoke $(BENCH_ARGS)

# Accord's own fault suite, long (docs/reliability.md): clients push while sync, edge and
# presence are SIGKILLed, a private PostgreSQL is stopped and Redis killed; prints a summary
# line and fails on any lost, duplicated or out-of-order change. E.g.
# make soak SOAK_ARGS="--clients 20 --changes 10000 --faults 14 --seed 1"
SOAK_ARGS ?=
.PHONY: soak
soak: install services
	$(PY) -m tests.fault.soak $(SOAK_ARGS)
