# crm-web: `make run` serves the demo on http://127.0.0.1:5000, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test lint install migrate demo serve bench load clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(FLASK) db upgrade

demo: install
	$(FLASK) crm demo

# On PostgreSQL (DATABASE_URL=postgresql...) the migrations and the demo run as that URL's role, the
# tables' owner; the server runs as the plain web role `crm web-role` makes, under row-level security.
run: demo
ifneq ($(filter postgres%,$(DATABASE_URL)),)
	DATABASE_URL="$$($(FLASK) crm web-role --print-url)" $(FLASK) run --host 127.0.0.1 --port 5000
else
	$(FLASK) run --host 127.0.0.1 --port 5000
endif

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance/*.sqlite3* .pytest_cache

load: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.load $(LOAD_ARGS)
