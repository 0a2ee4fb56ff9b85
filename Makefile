# The two commands: `make run` (the whole platform, foreground) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# `make test` runs in this many pytest-xdist workers, each with its own broker and database (0: in one process);
# each test file runs whole on one worker, so a module-scoped fixture (a running platform) starts once
TEST_WORKERS ?= 3

.PHONY: run up down infra test test-full-size test-e2e lint bench demo clean

$(STAMP): pyproject.toml adapter-kit/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	@echo "creating $(VENV) and installing the platform and its tools (a few minutes; log in $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@( $(PY) -m pip install -q --upgrade pip && \
	   $(PY) -m pip install -q -c constraints.txt -e ./adapter-kit -e '.[dev]' ) > $(VENV)/install.log 2>&1 \
	  || { tail -30 $(VENV)/install.log; echo "installation failed; the whole log: $(VENV)/install.log"; exit 1; }
	@echo "installed"
	@touch $(STAMP)

run: $(STAMP)        ## broker, database, the five services and the console in the foreground; Ctrl-C stops all
	$(PY) -m devstack run

up: $(STAMP)         ## the same, detached; returns once every service is ready
	$(PY) -m devstack up

down: $(STAMP)       ## stop what `make up` started
	$(PY) -m devstack down

infra: $(STAMP)      ## only the broker and the database, in the foreground
	$(PY) -m devstack infra

test: $(STAMP)       ## unit, contract and integration tests (they start their own broker and database)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not e2e" $(PYTEST_ARGS)

test-full-size: $(STAMP)  ## the volume tests at full size (e.g. the kill -9 ingestion at 200k changes; `make test` runs 10k)
	TEST_FULL_SIZE=1 RELIABILITY_CHANGES=200000 $(PY) -m pytest -m full_size $(PYTEST_ARGS)

test-e2e: $(STAMP)   ## the console in headless Chromium (apt-get install -y chromium chromium-driver); screenshots in .var/screenshots
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)      ## benchmarks; results in bench/results/*.json
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf .var

demo: $(STAMP)       ## demo directory, the market regulator's catalog entry and adapter sync (make up first)
	$(PY) -m services.directory.cli demo
	$(PY) -m examples.market_register
