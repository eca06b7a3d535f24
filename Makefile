# usermgmt: `make run` serves the API, `make test` runs every check. Nothing else needs installing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
# uv from PATH, or a private copy bootstrapped with the system Python into .tools/.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
VENV := .venv/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
PYTEST_ARGS ?=
WEB_DIR := clients/web
WEB_PORT ?= 3000

.PHONY: promtool haproxy oidc-provider chromium web web-install web-build test-web bench help install run migrate serve lint fmt typecheck contracts security test test-unit test-integration test-e2e test-fuzz revision clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

# Everything, dev tools included (tests, lint, types); also satisfies the runtime stamp below.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	@touch $@ .venv/.synced-runtime

# Only what serving needs. --inexact: dev tools already installed stay.
.venv/.synced-runtime: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --no-dev --inexact
	@touch $@

install: .venv/.synced ## install the locked dependencies, dev tools included, into .venv

web: .venv/.synced-runtime web-build ## the API (as make run) and the sample client together: open http://$(HOST):$(WEB_PORT)
	$(VENV)/usermgmt migrate
	@USERMGMT_FRONTEND_URL=$${USERMGMT_FRONTEND_URL:-http://$(HOST):$(WEB_PORT)} \
	  $(VENV)/usermgmt serve --host $(HOST) --port $(PORT) --workers $(WORKERS) & api=$$!; \
	  trap 'kill $$api 2>/dev/null; wait $$api' EXIT INT TERM; \
	  echo "usermgmt: the client on http://$(HOST):$(WEB_PORT), the API on http://$(HOST):$(PORT)"; \
	  cd $(WEB_DIR) && USERMGMT_API_URL=http://$(HOST):$(PORT) NEXT_TELEMETRY_DISABLED=1 npx next start -H $(HOST) -p $(WEB_PORT)

run: .venv/.synced-runtime ## migrate and serve on http://$(HOST):$(PORT) (SQLite in ./var unless USERMGMT_DATABASE_URL is set)
	$(VENV)/usermgmt migrate
	$(VENV)/usermgmt serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

migrate: .venv/.synced-runtime ## apply migrations to the configured database
	$(VENV)/usermgmt migrate

revision: install ## new migration: make revision m="what changed"
	$(VENV)/alembic revision --autogenerate -m "$(m)"

fmt: install ## format and auto-fix
	$(VENV)/ruff format src tests migrations bench
	$(VENV)/ruff check --fix src tests migrations bench

lint: install ## ruff (lint + format check)
	$(VENV)/ruff check src tests migrations bench
	$(VENV)/ruff format --check src tests migrations bench

typecheck: install ## mypy --strict on src/
	$(VENV)/mypy

contracts: install ## import-linter: the hexagon's layer contracts
	$(VENV)/lint-imports

security: install ## bandit over src/: no medium or high findings
	$(VENV)/bandit -q -r src -ll

# promtool (checks the alert rules in docs/deploy): from PATH, or unpacked from Debian's prometheus package into
# .tools/ (the package itself would install and start a Prometheus server). Without it those tests are skipped.
PROMTOOL_DIR := $(CURDIR)/.tools/promtool
promtool:
	@command -v promtool >/dev/null || [ -x $(PROMTOOL_DIR)/usr/bin/promtool ] || { \
	  tmp=$$(mktemp -d) && cd $$tmp && { apt-get download prometheus -qq 2>/dev/null \
	    || { apt-get update -qq && apt-get download prometheus -qq; }; } \
	  && dpkg-deb -x prometheus_*.deb $(PROMTOOL_DIR) && rm -rf $$tmp; \
	} || echo "promtool unavailable: the alert-rule checks will be skipped"

# haproxy (the load balancer of the scale-out tests and of `make bench BENCH_ARGS="--scale-out"`): from PATH, or
# installed from Debian. Only the binary is used, run in the foreground on a generated configuration; the Debian
# service is never started. Without it the scale-out tests are skipped.
haproxy:
	@command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt-get install -y -qq haproxy >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; } \
	  || echo "haproxy unavailable: the scale-out tests will be skipped"

# The OpenID Provider of the social-login tests (panva's oidc-provider, tests/support/oidc): its locked npm packages,
# installed again when package-lock.json is newer than the installed tree. Without Node.js those tests are skipped.
OIDC_DIR := tests/support/oidc
oidc-provider:
	@command -v npm >/dev/null || { echo "npm unavailable: the OpenID Provider tests will be skipped"; exit 0; }; \
	  [ $(OIDC_DIR)/node_modules/.package-lock.json -nt $(OIDC_DIR)/package-lock.json ] \
	  || { cd $(OIDC_DIR) && npm ci --no-audit --no-fund && touch node_modules/.package-lock.json; }

# Debian's Chromium, which the client's Playwright tests drive (Playwright's own browser downloads are not used).
chromium:
	@[ -x /usr/bin/chromium ] || apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# The client's locked npm packages (clients/web), installed again when package-lock.json is newer than the tree.
$(WEB_DIR)/node_modules/.package-lock.json: $(WEB_DIR)/package-lock.json
	cd $(WEB_DIR) && npm ci --no-audit --no-fund
	@touch $@

web-install: $(WEB_DIR)/node_modules/.package-lock.json ## the client's npm packages (npm ci)

web-build: web-install ## type-check and build the client (next build)
	cd $(WEB_DIR) && NEXT_TELEMETRY_DISABLED=1 npx next build

test-web: install web-build chromium oidc-provider ## the client in a real browser: Playwright drives Debian's chromium against a real API on PostgreSQL
	cd $(WEB_DIR) && NEXT_TELEMETRY_DISABLED=1 npx playwright test

test: lint typecheck contracts security promtool haproxy oidc-provider ## everything: lint, types, contracts, bandit, then all tests with coverage, then the client's browser tests
	PATH="$$PATH:$(PROMTOOL_DIR)/usr/bin" $(VENV)/pytest --cov --cov-report=term $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-web

test-unit: install ## domain and application tests with fakes; no database
	$(VENV)/pytest tests/unit $(PYTEST_ARGS)

test-integration: install ## adapters and migrations against PostgreSQL
	$(VENV)/pytest tests/integration $(PYTEST_ARGS)

test-e2e: install ## the HTTP API through the real app and PostgreSQL
	$(VENV)/pytest tests/e2e $(PYTEST_ARGS)

test-fuzz: install ## schemathesis against the OpenAPI schema, over a socket to the real service
	$(VENV)/pytest tests/fuzz $(PYTEST_ARGS)

bench: install haproxy ## load test on a fresh PostgreSQL database (wrk, hey, haproxy; installed from Debian if missing)
	@command -v wrk >/dev/null && command -v hey >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk hey; }
	$(VENV)/python bench/run.py $(BENCH_ARGS)

clean: ## remove caches (keeps ./var, the local database and keys)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
