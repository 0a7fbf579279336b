# The one task vocabulary: people, hooks, GitHub Actions and GitLab CI all call these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= digits
PYTEST_ARGS ?=

.PHONY: help setup run test lint typecheck unit bench clean infra-up infra-down infra-status

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## create .venv with pinned dependencies (idempotent)
	@scripts/bootstrap.sh

run: setup infra-up ## run the whole pipeline on the default model (ingest -> verify)
	$(BIN)/mlops run --model $(MODEL)

test: setup lint typecheck ## lint, type-check and run every test (starts local infra if it can)
	@scripts/infra.sh up --if-possible
	$(BIN)/pytest $(PYTEST_ARGS)

infra-up: ## start the docker engine, registry and base image (idempotent)
	@scripts/infra.sh up

infra-status: ## say what local infrastructure is running
	@scripts/infra.sh status

infra-down: ## stop what infra-up started (keeps images and registry data)
	@scripts/infra.sh down

lint: setup ## ruff
	$(BIN)/ruff check pipelines tests bench models

typecheck: setup ## mypy (strict on pipelines/)
	$(BIN)/mypy

unit: setup ## fast tests only
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

bench: setup infra-up ## benchmarks (markdown tables on stdout)
	@command -v wrk >/dev/null || scripts/infra.sh apt wrk
	$(BIN)/python bench/pipeline_warm_vs_cold.py
	$(BIN)/python bench/validation_vs_pandas.py
	$(BIN)/python bench/serving_throughput.py

clean: ## remove generated data and artifacts (keeps .venv)
	rm -rf artifacts data .dvc/tmp
