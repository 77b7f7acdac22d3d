# Atelier — the two commands a newcomer needs:
#   make run    set up everything missing, build the release server and start it on 127.0.0.1:8080 (demo profile)
#   make test   set up everything missing and run every Swift and Python test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.atelier-installed
TEST_STAMP := $(VENV)/.atelier-test-installed
SWIFT_FLAGS ?=

.PHONY: run test setup system-deps test-system-deps test-postgres test-s3 build build-debug test-swift test-python test-e2e test-faults clean

run: system-deps setup build
	.build/release/atelier serve

setup: $(VENV_STAMP)

# Reinstalls only when worker/requirements.txt changes.
$(VENV_STAMP): worker/requirements.txt
	@test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --upgrade pip
	$(VENV_PY) -m pip install --quiet -r worker/requirements.txt
	@touch $@

# Test-only tools (schemathesis, the OpenAPI validator) on top of the worker's environment.
$(TEST_STAMP): $(VENV_STAMP) tests/requirements.txt
	$(VENV_PY) -m pip install --quiet -r tests/requirements.txt
	@touch $@

build:
	swift build -c release --product atelier $(SWIFT_FLAGS)

build-debug:
	swift build --build-tests $(SWIFT_FLAGS)

# One configuration (debug) serves the Swift tests and the end-to-end tests, so CI compiles the stack once.
test: test-system-deps test-postgres setup test-s3 build-debug test-swift test-python test-e2e test-faults

# A throw-away PostgreSQL 15 cluster (own port, socket folder and data folder under /tmp, fsync off) that the
# store conformance suite and the multi-node tests share; installed first if missing.
TEST_PG_URL = $(shell bash scripts/test-postgres.sh url)
test-postgres:
	bash scripts/test-postgres.sh start

# The S3 peer (rclone serve s3, from tests/requirements.txt) that the storage conformance suite and the
# worker-node tests share.
TEST_S3_ENV = $(shell bash scripts/test-s3.sh env)
test-s3: $(TEST_STAMP)
	bash scripts/test-s3.sh start

system-deps:
	bash scripts/system-deps.sh run

test-system-deps:
	bash scripts/system-deps.sh test

test-swift:
	ATELIER_TEST_POSTGRES_URL=$(TEST_PG_URL) $(TEST_S3_ENV) swift test --skip-build $(SWIFT_FLAGS)

test-python: setup
	cd worker && ../$(VENV_PY) -m pytest -q tests

test-e2e: setup $(TEST_STAMP)
	ATELIER_TEST_POSTGRES_URL=$(TEST_PG_URL) $(TEST_S3_ENV) ATELIER_BIN=$(CURDIR)/.build/debug/atelier $(VENV_PY) -m pytest -q --durations=15 tests/e2e

# Faults across nodes (tests/faults): two API nodes and two worker nodes, each fault injected with runs in flight;
# prints one line per fault.
test-faults: setup $(TEST_STAMP) test-postgres test-s3
	ATELIER_TEST_POSTGRES_URL=$(TEST_PG_URL) $(TEST_S3_ENV) ATELIER_BIN=$(CURDIR)/.build/debug/atelier $(VENV_PY) -m pytest -q tests/faults

clean:
	rm -rf .build $(VENV) data
