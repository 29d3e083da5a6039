# One entry point for people and CI. Every target creates .venv and installs the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test faults browser lint format serve migrate sandbox bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

## demo: install, then run the demo on the embedded PostgreSQL (ARGS="--fresh" to start clean)
demo: $(STAMP)
	$(BIN)/campaignsvc demo $(ARGS)

## test: install, lint, then the whole suite; starts the PostgreSQL and RabbitMQ it needs when none answers
## (tests/servers.py: the embedded PostgreSQL; a broker node, apt-get installing rabbitmq-server as root)
test: $(STAMP) lint browser
	$(BIN)/pytest $(ARGS)

## faults: the fault tier alone (tests/faults/README.md), figures on stdout and in test-artifacts/faults/
faults: $(STAMP)
	$(BIN)/pytest tests/faults -s $(ARGS)

## browser: Debian's chromium for tests/e2e/test_dashboard_browser.py, installed once (needs root + apt-get)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "browser: installing Debian's chromium"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "browser: chromium is missing and cannot be installed here (apt-get install chromium as root)" >&2; \
	  fi; }

lint: $(STAMP)
	$(BIN)/ruff check campaignsvc tests $(wildcard bench)
	$(BIN)/ruff format --check campaignsvc tests $(wildcard bench)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format campaignsvc tests $(wildcard bench)
	$(BIN)/ruff check --fix campaignsvc tests $(wildcard bench)

serve: $(STAMP)
	$(BIN)/campaignsvc serve --migrate

migrate: $(STAMP)
	$(BIN)/campaignsvc migrate

## bench: every benchmark at CI size, one JSON report each in bench/results/ (SIZE=full: the SPEC sizes)
SIZE ?= ci
bench: $(STAMP)
	$(BIN)/python -m bench all --size $(SIZE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
