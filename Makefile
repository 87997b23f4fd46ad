# Every target that needs the virtual environment creates it first,
# so `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test lint typecheck check demo bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,fast]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install sandbox (editable) with the dev tools

test: $(STAMP) ## run the test suite
	$(BIN)/python -m pytest -q

lint: $(STAMP) ## ruff check, format check, and the import layers (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP) ## mypy, strict, on the package
	$(BIN)/mypy

check: lint typecheck test ## lint + typecheck + test (what CI runs)

# Ctrl-C ends `sandbox up` with 130 after a clean teardown: that is a normal end of the
# demo, not a failure for make to report.
demo: $(STAMP) ## install, then bring up the web-db-api sandbox (Ctrl-C stops it)
	@$(BIN)/sandbox up web-db-api || test $$? -eq 130

bench: $(STAMP) ## run the benchmarks in bench/
	$(BIN)/python bench/run.py

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
