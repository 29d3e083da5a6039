# One entry point for people and CI. Every target creates .venv and installs the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint format serve migrate sandbox bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

## demo: install, then run the demo on the embedded PostgreSQL (ARGS="--fresh" to start clean)
demo: $(STAMP)
	$(BIN)/campaignsvc demo $(ARGS)

## test: install, lint, then the whole suite (unit, integration, e2e) against local PostgreSQL and RabbitMQ
test: $(STAMP) lint
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check campaignsvc tests $(wildcard bench)
	$(BIN)/ruff format --check campaignsvc tests $(wildcard bench)

format: $(STAMP)
	$(BIN)/ruff format campaignsvc tests $(wildcard bench)
	$(BIN)/ruff check --fix campaignsvc tests $(wildcard bench)

serve: $(STAMP)
	$(BIN)/campaignsvc serve --migrate

migrate: $(STAMP)
	$(BIN)/campaignsvc migrate

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
