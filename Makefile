# Two commands: `make run` sets up and runs the product; `make test` sets up and runs every test.
# Everything installs into ./.venv: requirements.lock (what the product runs on, the whole tree
# pinned) for `make run`; requirements-dev.lock adds the test, lint and type tools for `make test`.

PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000
# PostgreSQL for the second pass of the suite; CI=true makes it mandatory.
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
# Redis for the shared rate limiter's tests (skipped when unreachable, except on CI).
export AFTERSALES_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: setup setup-dev browser run test lint pg-check test-sqlite test-postgres bench messages clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PY) >/dev/null || { echo "needs $(PY) (Python 3.11)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

## What the product runs on (no test tools).
setup: $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(BIN)/pip install --quiet -r requirements-dev.lock
	@touch $(DEV_STAMP)

## The product plus pytest, hypothesis, schemathesis, playwright, ruff, mypy.
setup-dev: $(DEV_STAMP)

## The panel's browser tests drive Debian's chromium with a CJK font (installed when missing).
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi wqy; then \
		echo "installing chromium and a CJK font for the browser tests"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$SUDO apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	fi

## The product: SQLite under ./data, the demo shop, the API (and the bot when a token is set).
## Another address: `make run PORT=8011` (or HOST=0.0.0.0 to listen on every interface).
run: setup
	$(BIN)/aftersales migrate
	$(BIN)/aftersales demo --host $(HOST) --port $(PORT)
	$(BIN)/aftersales serve --host $(HOST) --port $(PORT)

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-sqlite: setup-dev browser
	$(BIN)/python -m pytest -W error -q

## Can the PostgreSQL pass run (PG_TEST_URL)? Says why not: nothing listening, a refused
## log-in, a missing database. On CI (CI=true) it must: a failure stops `make test` here, before
## the long SQLite pass.
pg-check: setup
	@if reason=$$($(BIN)/python tests/pg_reachable.py "$(PG_TEST_URL)" 2>&1); then \
		echo "$$reason: the PostgreSQL pass will run"; \
	elif [ "$$CI" = "true" ]; then \
		echo "$$reason"; echo "on CI the suite must run on PostgreSQL: stopped"; exit 1; \
	else \
		echo "$$reason"; echo "the PostgreSQL pass will be skipped (CI runs it)"; \
	fi

test-postgres: setup-dev
	@if $(BIN)/python tests/pg_reachable.py "$(PG_TEST_URL)" >/dev/null; then \
		AFTERSALES_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -W error -q \
			--ignore=tests/browser; \
	elif [ "$$CI" = "true" ]; then \
		echo "on CI the suite must run on PostgreSQL: failed"; exit 1; \
	else \
		echo "skipped the PostgreSQL pass (CI runs it)"; \
	fi

## Every test: lint and types, whether PostgreSQL can be used, the suite on SQLite (with the
## browser tests), then the suite on PostgreSQL (the browser tests run their own SQLite server,
## so once is enough).
test: lint pg-check test-sqlite test-postgres

bench: setup-dev
	$(BIN)/python -m bench.ticket_list

## After a change of the bot's, the agents' cards' or the policy's English texts: extract every marked text
## (`N_`, `Nn_`: tickets/catalogs.py) and merge it into the Chinese catalogs, whose new entries
## a translator then fills in (the catalog test fails until they are).
messages: setup
	$(BIN)/pybabel -q extract -k Nn_:1,2 --sort-by-file -o $(VENV)/bot.pot bot
	$(BIN)/pybabel -q update --ignore-obsolete -D bot -l zh_CN -i $(VENV)/bot.pot -d bot/texts
	$(BIN)/pybabel -q extract -k Nn_:1,2 --sort-by-file -o $(VENV)/agents.pot \
		tickets/messages/cards.py
	$(BIN)/pybabel -q update --ignore-obsolete -D agents -l zh_CN -i $(VENV)/agents.pot -d templates/agents
	$(BIN)/pybabel -q extract -k Nn_:1,2 --sort-by-file -o $(VENV)/policy.pot \
		tickets/policy/texts.py
	$(BIN)/pybabel -q update --ignore-obsolete -D policy -l zh_CN -i $(VENV)/policy.pot -d templates/policy

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
