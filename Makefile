# Parley — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

# The services pass of `make test`: real Postgres and Redis on this machine.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/parley
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/15
SERVICES_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) CHANNEL_LAYER_PREFIX=parley-test
TEST_ENV     := PARLEY_DOTENV=0 PARLEY_ENV=test

.PHONY: run dev install install-dev vendor demo test test-embedded test-services lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed-run

# The dashboard's Chart.js: the version package-lock.json pins, from the npm registry, served from static/.
CHARTJS := static/vendor/chart.umd.js
install: $(VENV)/.installed-run $(CHARTJS)
install-dev: $(VENV)/.installed-dev $(CHARTJS)

$(CHARTJS): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: the analytics dashboard needs it to install Chart.js" \
		"(Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund
	mkdir -p $(@D)
	cp node_modules/chart.js/dist/chart.umd.js $@

## vendor: the dashboard's front-end packages (Chart.js) from package-lock.json into static/vendor/
vendor: $(CHARTJS)

# The browser tests drive Debian's chromium through Playwright (no browser download by Playwright).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	@echo "== installing Debian's chromium for the browser tests =="
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The reverse-proxy tests (tests/deploy/) run the shipped deploy/nginx.conf in Debian's nginx.
NGINX := /usr/sbin/nginx
$(NGINX):
	@echo "== installing Debian's nginx for the reverse-proxy tests =="
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx

## run: virtualenv, install, migrate, serve on the embedded defaults (SQLite, in-memory layer, offline assistant)
run: install
	$(BIN)/python manage.py migrate --noinput
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python manage.py serve

## dev: like run, with Django's auto-reloading runserver (daphne underneath)
dev: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

## demo: fill an empty database with 2,000 demo chats over 30 days and their analytics (a no-op on a non-empty one)
# seed_demo_data exits 3 when the database already has chat sessions: print its message, succeed.
demo: install
	$(BIN)/python manage.py migrate --noinput
	@$(BIN)/python manage.py seed_demo_data --sessions 2000 --days 30; status=$$?; \
	if [ $$status -eq 3 ]; then echo "make demo: nothing to do (the database already has chat sessions)"; \
	elif [ $$status -ne 0 ]; then exit $$status; fi

## test: the whole suite on the embedded defaults, then the backend tests on Postgres + Redis
test: test-embedded test-services

test-embedded: install-dev $(CHROMIUM) $(NGINX)
	$(TEST_ENV) $(BIN)/python -m pytest

test-services: install-dev
	@if $(BIN)/python -m tests.support.services; then \
		echo "== services pass: Postgres + Redis =="; \
		$(TEST_ENV) $(SERVICES_ENV) $(BIN)/python -m pytest -m "backends or services"; \
	elif [ "$$REQUIRE_SERVICES" = "1" ]; then \
		echo "REQUIRE_SERVICES=1 but Postgres ($(TEST_DATABASE_URL)) or Redis ($(TEST_REDIS_URL)) is unreachable"; exit 1; \
	else \
		echo "Postgres or Redis unreachable: skipping the services pass (set REQUIRE_SERVICES=1 to fail instead)"; \
	fi

## lint: ruff, and the layer contracts of pyproject.toml (import-linter; see docs/architecture.md)
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: chat throughput vs a bare echo consumer (SQLite, Postgres + Redis), provider streaming overhead, analytics and dashboard at scale, fuzzing and abuse
bench: install-dev
	$(BIN)/python bench/chat_throughput.py
	$(BIN)/python bench/provider_overhead.py
	$(BIN)/python bench/analytics_scale.py
	$(BIN)/python bench/dashboard_scale.py
	$(BIN)/python bench/fuzz.py
	$(BIN)/python bench/abuse.py
	$(BIN)/python bench/event_seam.py

clean:
	rm -rf $(VENV) .pytest_cache .test-db.sqlite3* .staticfiles node_modules $(CHARTJS)
