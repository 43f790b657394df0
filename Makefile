# The two commands a newcomer needs: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_BIN ?= /usr/lib/postgresql/15/bin
PORT ?= 8000

.PHONY: install run test lint fmt migrate postgres-binaries chromium clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/flowbuilder serve --embedded --port $(PORT)

# The integration tests start a throwaway PostgreSQL cluster from the local server binaries
# (unless TEST_DATABASE_URL is set or a Docker engine answers); install them when missing.
postgres-binaries:
	@if [ -z "$$TEST_DATABASE_URL" ] && [ ! -S /var/run/docker.sock ] && [ ! -x "$(PG_BIN)/postgres" ] \
	    && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	  echo "installing the PostgreSQL server binaries (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

# The /docs page is rendered in headless Chromium (tests/e2e/test_docs_page.py): Debian's package,
# installed when missing.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  echo "installing Chromium (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

test: $(STAMP) postgres-binaries chromium
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/mypy examples
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks examples
	$(BIN)/ruff format src tests benchmarks examples

migrate: $(STAMP)
	$(BIN)/flowbuilder migrate

clean:
	rm -rf $(VENV) .flowbuilder .mypy_cache .ruff_cache .pytest_cache

# FlowBuilder's API under wrk against a raw ASGI + asyncpg ceiling app; writes docs/benchmarks.md.
# Loopback only, about 5 minutes (more with benchmarks/scale.py and engine.py). BENCH_ARGS: see
# `.venv/bin/python -m benchmarks --help`.
bench: $(STAMP) postgres-binaries
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m benchmarks $(BENCH_ARGS)
