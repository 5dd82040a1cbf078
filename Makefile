# crm-web: `make run` serves the demo on http://127.0.0.1:5000 (`make run PORT=8000` elsewhere),
# `make test` runs the whole suite. Everything installs from the lock file requirements/dev.txt.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 5000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
LOCK := requirements/dev.txt
PIP_COMPILE := $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

.PHONY: run test test-pooled test-fast lint hooks install lock upgrade migrate demo bench bench-import bench-tenants load clean cluster cluster-stop

# Re-installs only when the lock file (or pyproject.toml) changed since the last install.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# After editing the dependencies in pyproject.toml: re-pin (keeping every pin that still fits).
# `make upgrade` moves every pin to the newest version pyproject.toml allows.
lock: install
	$(PIP_COMPILE) --extra demo --extra test --extra dev -o $(LOCK) pyproject.toml
	$(PIP_COMPILE) -c $(LOCK) -o requirements/main.txt pyproject.toml
	$(PIP_COMPILE) -c $(LOCK) --extra bench -o requirements/bench.txt pyproject.toml

upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

migrate: install
	$(FLASK) db upgrade

demo: install
	$(FLASK) crm demo --url http://$(HOST):$(PORT)

# On PostgreSQL (DATABASE_URL=postgresql...) the migrations and the demo run as that URL's role, the
# tables' owner; the server runs as the plain web role `crm web-role` makes, under row-level security.
run: demo
ifneq ($(filter postgres%,$(DATABASE_URL)),)
	DATABASE_URL="$$($(FLASK) crm web-role --print-url)" $(FLASK) run --host $(HOST) --port $(PORT)
else
	$(FLASK) run --host $(HOST) --port $(PORT)
endif

# pytest-xdist spreads the tests over one worker process per CPU, to keep CI within its time limit as the
# suite grows. Each worker has its own databases, Redis database, live server and PgBouncer
# (tests/conftest.py). `make test XDIST=` or `make test PYTEST_ARGS="-n 0 tests/test_x.py"` runs in
# a single process (the last -n wins).
XDIST ?= -n auto
test: install
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)
	$(MAKE) test-pooled

# The PostgreSQL tests that cover every query path (services, views and their query budgets, tenant
# isolation, search, concurrency) once more through a private PgBouncer in transaction pooling mode
# (TEST_PGBOUNCER=1, see tests/conftest.py; needs Debian's pgbouncer).
POOLED_TESTS ?= tests/test_contacts_service.py tests/test_contacts_views.py tests/test_search.py tests/test_search_plans.py tests/test_tenant_isolation.py tests/test_concurrency.py
test-pooled: install
	TEST_PGBOUNCER=1 $(BIN)/python -m pytest $(XDIST) -m "not slow" $(POOLED_TESTS)

# Everything but the slow tier (browser, property fuzzing, fault injection): a quick check while coding.
test-fast: install
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Runs the same checks as `make lint` before every commit of this clone (.pre-commit-config.yaml).
hooks: install
	$(BIN)/pre-commit install

# The production stack on loopback ports, from Debian's packages and the venv (deploy/cluster.sh):
# nginx on :58080 in front of two gunicorn nodes and the import worker, PgBouncer (transaction pooling),
# a PostgreSQL primary with a streaming replica, Redis. Data stays in CLUSTER_DIR between runs.
CLUSTER_DIR ?= /tmp/crm-cluster
cluster: install
	CLUSTER_DIR=$(CLUSTER_DIR) bash deploy/cluster.sh start

cluster-stop:
	CLUSTER_DIR=$(CLUSTER_DIR) bash deploy/cluster.sh stop

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# CSV import of each entity at 10,000 and 100,000 rows (BENCH_IMPORT_ARGS="--rows 10000" for the small size only).
bench-import: install
	$(BIN)/python -m bench.imports $(BENCH_IMPORT_ARGS)

# 1,000 organisations of size S next to the L bench organisation in one database (a copy of L's; XL with
# BENCH_TENANTS_ARGS="--big-size XL"): one small one's pages there against alone, and their plans.
bench-tenants: install
	$(BIN)/python -m bench.tenants $(BENCH_TENANTS_ARGS)

# CLUSTER=1: the fault load test through nginx against `make cluster` (bench/cluster_load.py): kills a
# node and brings it back, restarts PgBouncer, kills Redis and brings it back, mid-run.
load: install
	$(BIN)/pip install --quiet -r requirements/bench.txt
ifeq ($(CLUSTER),1)
	$(BIN)/python -m bench.cluster_load $(LOAD_ARGS)
else
	$(BIN)/python -m bench.load $(LOAD_ARGS)
endif

clean:
	rm -rf $(VENV) instance/*.sqlite3* .pytest_cache
