# One entry point for developers, CI and deployers.
# Without a Docker engine, `up`/`down` use the local infrastructure scripts in deploy/.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SERVICES := crm identity notification mailsync
DOCKER_ENGINE := $(shell docker info >/dev/null 2>&1 && echo yes)
LOCAL_ENV = eval "$$(deploy/local.sh env)"

.PHONY: help venv lock lint format typecheck test test-faults test-fast check schemas docs secrets up down demo status logs bench clean dist validate-asyncapi

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python  ## create .venv and install the pinned dependencies (runtime + dev)
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .

# requirements.lock: what the services need (the Docker images install only this);
# requirements-dev.lock: that plus the test and lint tools.
lock: $(BIN)/python  ## re-resolve dependencies and rewrite both lock files
	$(BIN)/pip install --quiet --upgrade -e '.[dev]'
	$(BIN)/pip freeze --exclude-editable > .lock-all.tmp
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -c .lock-all.tmp .
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^crm-backbone' > requirements.lock
	(echo '-r requirements.lock'; grep -vxF -f requirements.lock .lock-all.tmp) > requirements-dev.lock
	rm -rf .lock-venv .lock-all.tmp

lint: venv  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv  ## mypy strict
	$(BIN)/mypy

test: venv  ## the whole test suite: unit, integration, end-to-end, then the fault suite
	$(BIN)/pytest -m "not faults"
	$(MAKE) --no-print-directory test-faults

test-faults: venv  ## the fault-injection suite alone (FAULT_ACCOUNTS=5000 by default)
	$(BIN)/pytest -m faults tests/faults

test-fast: venv  ## unit tests only (no infrastructure)
	$(BIN)/pytest tests/unit tests/contracts tests/test_compose.py tests/test_helm.py

check: lint typecheck test  ## everything CI runs

schemas: venv  ## regenerate the committed JSON Schemas (refuses incompatible changes)
	$(BIN)/python -m shared.contracts.schemas

# Building the apps reads their settings, keys included: fresh random ones do for documents.
docs: venv  ## regenerate the committed AsyncAPI documents under docs/asyncapi
	set -a && source <($(BIN)/python -m services.keys) && $(BIN)/python -m shared.contracts.asyncapi

# Keeps an existing .env (its MAILBOX_SECRET_KEY decrypts stored mailbox passwords).
SECRETS_ARGS ?=
secrets:  ## write .env (random keys and passwords, git-ignored) and the broker users for docker compose
	$(BIN)/python deploy/compose/write_secrets.py $(SECRETS_ARGS)

dist: venv  ## build the contracts wheel: dist/crm_backbone_contracts-<contract version>-py3-none-any.whl
	$(BIN)/python contracts/build.py dist

# The official AsyncAPI parser, pinned in tools/asyncapi/package-lock.json (npm ci: exactly that).
validate-asyncapi:  ## validate docs/asyncapi/*.yaml with the official AsyncAPI parser (Node 18+)
	cd tools/asyncapi && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cd tools/asyncapi && node validate.mjs ../../docs/asyncapi/*.yaml

ifeq ($(DOCKER_ENGINE),yes)
up: secrets  ## start infrastructure and the four services (docker compose, or local processes)
	docker compose up --build --detach --wait
down:  ## stop everything started by `make up`
	docker compose down
status:
	docker compose ps
demo: up  ## start everything and walk through the demo (the system keeps running)
	docker compose run --rm crmctl demo
else
up: venv
	deploy/local.sh install
	deploy/local.sh up
	deploy/services.sh start
down:
	-deploy/services.sh stop
	deploy/local.sh down
status:
	@deploy/local.sh status; deploy/services.sh status
demo: up
	@$(LOCAL_ENV); RABBITMQ_URL="$$CRMCTL_RABBITMQ_URL" $(BIN)/crmctl demo
endif

ACCOUNTS ?= 10000
ADDRESSES_PER_ACCOUNT ?= 2.5
TOGGLES ?= 200
REPLICAS ?= 2
BENCH_ARGS ?=
bench: venv  ## seed a firm and measure throughput, latency and memory (bench-results/)
	PYTHONPATH=. $(BIN)/python -m bench --accounts $(ACCOUNTS) \
		--addresses-per-account $(ADDRESSES_PER_ACCOUNT) --toggles $(TOGGLES) \
		--replicas $(REPLICAS) $(BENCH_ARGS)

logs:  ## follow the local services' logs
	tail -f .local/log/*.log

clean:  ## remove local data, logs and caches (keeps .venv)
	-$(MAKE) down
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
