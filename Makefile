# Accord — the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# Two stamps, one .venv: `make run` needs only the first (the packages and their own
# dependencies); `make test` and the tools add the test toolchain on top.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PKGS := libs/common services/sync services/presence services/edge libs/cli clients/python
PYTEST_ARGS ?=
DIST := dist

.PHONY: install install-run run test test-embedded services protos lint check-protos dist bench clean

# What running needs: the packages, editable from this checkout, with their dependencies.
install-run: $(RUN_STAMP) $(COMPILE_STAMP)

$(RUN_STAMP): requirements-build.txt $(addsuffix /pyproject.toml,$(PKGS))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -r requirements-build.txt
	$(PIP) --no-build-isolation $(addprefix -e ,$(PKGS))
	@touch $(RUN_STAMP)

# Then the hot modules are compiled with mypyc, in place beside their sources (scripts/compile.py,
# well under a minute); again whenever one of their sources changes, since a compiled module
# shadows its .py. ACCORD_PURE_PYTHON=1 compiles nothing and removes what an earlier build left;
# the kind stamp (.build-compiled or .build-pure) makes switching between the two rebuild.
ACCORD_PURE_PYTHON ?=
BUILD_KIND := $(if $(filter-out 0 false no,$(ACCORD_PURE_PYTHON)),pure,compiled)
KIND_STAMP := $(VENV)/.build-$(BUILD_KIND)
COMPILE_STAMP := $(VENV)/.installed-compile
COMPILED_SOURCES := $(shell $(PYTHON) scripts/compile.py --list-sources 2>/dev/null)

$(KIND_STAMP):
	@mkdir -p $(VENV) && rm -f $(VENV)/.build-* && touch $@

$(COMPILE_STAMP): $(RUN_STAMP) scripts/compile.py $(COMPILED_SOURCES) $(KIND_STAMP)
	ACCORD_PURE_PYTHON=$(ACCORD_PURE_PYTHON) $(PY) scripts/compile.py
	@touch $(COMPILE_STAMP)

# Everything: the above plus the test and lint tools (requirements-dev.txt).
install: $(DEV_STAMP) $(COMPILE_STAMP)

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	@touch $(DEV_STAMP)

run: install-run
	$(VENV)/bin/accord dev

# Every test; PostgreSQL and Redis are started (or installed) first. The whole suite runs as
# installed (the hot modules compiled), then the unit tests again on the pure-Python sources.
test: install services
	SYNC_HYPOTHESIS_PROFILE=sync-ci $(PY) -m pytest $(PYTEST_ARGS)
	ACCORD_PURE_PYTHON=1 SYNC_HYPOTHESIS_PROFILE=sync-ci $(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

# Only the tests that need no servers.
test-embedded: install
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

services:
	@bash scripts/ensure-services.sh
	@if [ -f scripts/ensure-tools.sh ]; then bash scripts/ensure-tools.sh; fi

protos: install
	$(PY) scripts/gen_protos.py

check-protos: install
	$(PY) scripts/gen_protos.py --check

# Every Python package as an sdist and a wheel built from that sdist (as `python -m build`
# does), and the JavaScript SDK as an npm tarball, all in dist/.
dist: install-run
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for pkg in $(PKGS); do \
	  echo "dist: $$pkg"; \
	  (cd $$pkg && $(abspath $(VENV))/bin/hatchling build -t sdist -d $(abspath $(DIST)) >/dev/null); \
	done
	@set -e; for sdist in $(DIST)/*.tar.gz; do \
	  $(PY) -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
	    -w $(DIST) $$sdist; \
	done
	cd clients/js && npm pack --silent --pack-destination $(abspath $(DIST)) >/dev/null
	@ls -1 $(DIST)

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
	$(PYTHON) scripts/compile.py --clean
	rm -rf $(VENV) $(DIST) .pytest_cache .mypy_cache .ruff_cache

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
