#!/usr/bin/env bash
# Refuse any MODEL, ENV, UNTIL, SINCE, FAIL_ON, MONITOR_FAILING, MONITOR_MODELS or CLUSTER_JOB that is not exactly one of the names this checkout defines, and
# a REPORT_POST that is not empty, 0 or 1, before anything uses them. CI jobs run it first (`make check-inputs`) and every Makefile target
# that takes these values depends on it. The values come from the environment only: this script
# never evaluates them, and compares them as literal strings (so `./production`, `production/`,
# `Production` or ` production` are refused, not normalised).
#   MODEL  a folder under models/            ENV  a file manifests/environments/<ENV>.yaml
#   UNTIL  a pipeline stage (see `mlops run --help`)
#   REGISTRY, MLOPS_GITOPS_BRANCH  where set: a registry reference, a plain branch name
#   SINCE  a Prometheus duration (1h, 30m, 1d12h), `mlops monitor --since`
#   FAIL_ON  blank-separated conditions of `mlops monitor --fail-on` (drift anomalies errors
#          latency), or empty
#   MONITOR_FAILING  true, false or empty: the monitor job's verdict that `make retrain` reads
#   MONITOR_MODELS  empty, or a compact JSON array of model folders (`[]`, `["digits"]`,
#          `["diabetes","digits"]`): the models the monitor found failing, which `make retrain`
#          retrains
#   CLUSTER_JOB  train or tune: which of the model's Jobs `make cluster-job` starts
#   REPORT_POST  1 posts the report as the PR/MR comment; empty or 0 does not. Anything else
#          (`yes`, `true`, `on`, ` 1`) is refused rather than guessed: `make report` used to post
#          for any non-empty value, so REPORT_POST=0 posted.
set -euo pipefail
cd "$(dirname "$0")/.."

# The stages of `mlops run --until`, in order (PIPELINE in pipelines/core/dvcgraph.py; a unit
# test keeps the two lists equal).
STAGES=(ingest validate train evaluate gate package verify release promote)

fail() {
  # %q shows the refused value with its quotes and control characters visible, never runs it.
  printf 'check-inputs: %s=%q is not %s; use one of: %s\n' "$1" "$2" "$3" "$4" >&2
  exit 2
}

one_of() {  # one_of VALUE NAME... -> 0 when VALUE equals one NAME exactly
  local value=$1 name
  shift
  for name in "$@"; do
    [[ "$value" == "$name" ]] && return 0
  done
  return 1
}

models=()
for dir in models/*/; do
  name=${dir#models/}
  models+=("${name%/}")
done
envs=()
for file in manifests/environments/*.yaml; do
  name=${file#manifests/environments/}
  envs+=("${name%.yaml}")
done

model=${MODEL-digits}
env=${ENV-staging}
until=${UNTIL-promote}
post=${REPORT_POST-}
since=${SINCE-1h}
fail_on=${FAIL_ON-}
failing=${MONITOR_FAILING-}
failing_models=${MONITOR_MODELS-}
cluster_job=${CLUSTER_JOB-train}
# `mlops monitor`'s --fail-on choices (CONDITIONS in pipelines/core/monitor.py; a test keeps the
# two lists equal).
CONDITIONS=(drift anomalies errors latency)
one_of "$model" "${models[@]}" || fail MODEL "$model" "a model of this repository" "${models[*]}"
one_of "$env" "${envs[@]}" || fail ENV "$env" "an environment of this repository" "${envs[*]}"
one_of "$until" "${STAGES[@]}" || fail UNTIL "$until" "a pipeline stage" "${STAGES[*]}"
one_of "$post" "" 0 1 ||
  fail REPORT_POST "$post" "empty, 0 or 1" "1 (post the report), 0 or empty (do not post)"

# Where set (CI variables, Cloud Build substitutions): REGISTRY as a registry reference
# host[:port][/namespace] in lower case, and MLOPS_GITOPS_BRANCH as a plain branch name, so
# neither can carry anything a shell, docker or git would read as more.
registry=${REGISTRY-}
[[ -z "$registry" ||
  "$registry" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$ ]] ||
  fail REGISTRY "$registry" "a registry reference" "host[:port][/namespace], e.g. ghcr.io/acme"
branch=${MLOPS_GITOPS_BRANCH-}
[[ -z "$branch" || ("$branch" =~ ^[A-Za-z0-9][A-Za-z0-9._/-]*$ && "$branch" != *..* &&
  "$branch" != */ && "$branch" != *.lock) ]] ||
  fail MLOPS_GITOPS_BRANCH "$branch" "a branch name" "letters, digits and . _ / - (e.g. main)"
# mlops checks the window's range again; here only its shape: digits and units, nothing else.
[[ "$since" =~ ^([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$ && -n "$since" ]] ||
  fail SINCE "$since" "a Prometheus duration" "1h, 30m, 1d12h"
# Words separated by single blanks, each a condition: the Makefile splits FAIL_ON on blanks.
if [[ -n "$fail_on" ]]; then
  [[ "$fail_on" =~ ^[a-z]+( [a-z]+)*$ ]] ||
    fail FAIL_ON "$fail_on" "a blank-separated list of conditions" "${CONDITIONS[*]}"
  for condition in $fail_on; do
    one_of "$condition" "${CONDITIONS[@]}" ||
      fail FAIL_ON "$fail_on" "a blank-separated list of conditions" "${CONDITIONS[*]}"
  done
fi
one_of "$failing" "" true false ||
  fail MONITOR_FAILING "$failing" "empty, true or false" "true (retrain), false or empty"
# Exactly what `mlops monitor --verdict` writes (compact JSON): "name" entries joined by commas
# in brackets, no blank, each name a model folder; `make retrain` looks for "$MODEL" in it.
refuse_models() {
  fail MONITOR_MODELS "$failing_models" "a compact JSON array of model names" \
    "empty, [] or [\"name\",...] with names of: ${models[*]}"
}
if [[ -n "$failing_models" && "$failing_models" != "[]" ]]; then
  [[ "$failing_models" =~ ^\[\"[a-z0-9-]+\"(,\"[a-z0-9-]+\")*\]$ ]] || refuse_models
  names=${failing_models:2:${#failing_models}-4}  # without the [" and "]
  IFS=, read -r -a listed <<<"${names//\"/}"
  for name in "${listed[@]}"; do
    one_of "$name" "${models[@]}" || refuse_models
  done
fi
one_of "$cluster_job" train tune ||
  fail CLUSTER_JOB "$cluster_job" "a Job of the cluster path" "train tune"
