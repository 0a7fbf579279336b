# The one task vocabulary: people, hooks, GitHub Actions and GitLab CI all call these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= digits
PYTEST_ARGS ?=

.PHONY: help setup run test lint typecheck unit integration e2e bench config-schema clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## create .venv with pinned dependencies (idempotent)
	@scripts/bootstrap.sh

run: setup ## run the whole pipeline on the default model (ingest -> gate)
	$(BIN)/mlops run --model $(MODEL)

test: setup lint typecheck ## lint, type-check and run every test
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup ## ruff
	$(BIN)/ruff check pipelines tests bench models

typecheck: setup ## mypy (strict on pipelines/)
	$(BIN)/mypy

unit: setup ## fast tests only
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

bench: setup ## benchmarks (markdown tables on stdout)
	$(BIN)/python bench/pipeline_warm_vs_cold.py
	$(BIN)/python bench/validation_vs_pandas.py

clean: ## remove generated data and artifacts (keeps .venv)
	rm -rf artifacts data .dvc/tmp
