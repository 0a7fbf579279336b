"""The CI side of the security model (README, "Security model"), checked on the real files:

- no job that runs an unmerged change's code holds any secret (GitHub: only this run's
  GITHUB_TOKEN; GitLab: only the MR note token and CI_JOB_TOKEN); the gate's baseline comes as
  a bundle that merged code exported, and the read credentials that export needs live in an
  environment only the default branch reaches;
- no value a person or a CI variable supplies reaches a shell: the Makefile never pastes it into
  a recipe, and MODEL/ENV/UNTIL must be names this repository defines (real `make`, real bash);
- environments are named by the CI files, never by a typed value (no alias reaches an
  unprotected environment);
- no rule of ours skips a merge-request pipeline, whatever the commit message (GitLab's rules,
  evaluated by gitlab-ci-local); `[skip ci]`, which the platforms honour before any rule, is
  answered by settings the README lists, and it names the exact checks to require;
- a cached virtualenv is checked, not trusted (scripts/bootstrap.sh on a real, tampered venv);
- the job that posts the report comment installs only what `mlops report` imports (no
  TensorFlow, GX or DVC), and `mlops report` imports nothing else;
- zizmor's auditor persona finds nothing at medium or above.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipelines import evidence
from pipelines.core.dvcgraph import PIPELINE
from tests import util
from tests.conftest import ROOT, copy_repo, require
from tests.fakes.scm_api import TOKEN, FakeApi, serve

WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
GITLAB = ROOT / ".gitlab-ci.yml"
GCL = ROOT / "scripts/ci-tools/node_modules/.bin/gitlab-ci-local"
VENV_BIN = Path(sys.executable).parent
ENVIRONMENTS = sorted(p.stem for p in (ROOT / "manifests/environments").glob("*.yaml"))
MODELS = sorted(p.name for p in (ROOT / "models").iterdir() if p.is_dir())
# Secrets that can write somewhere. Only jobs in a protected environment may name them.
WRITE_SECRETS = {"GITOPS_TOKEN", "REGISTRY_PASSWORD"}
# Read-only credentials: only the baseline export on the default branch holds them, inside the
# environment `baseline` (README, "Security model").
READ_SECRETS = {"REGISTRY_READ_PASSWORD", "GITOPS_READ_TOKEN"}
# The one secret a job that runs on a pull request may name: the run's own token, whose
# permissions the job declares (forks get it read-only whatever they declare).
PULL_REQUEST_SECRETS = {"GITHUB_TOKEN"}
# The read-only credential of the DVC remote (README, "Data in a DVC remote"): a pull request's
# pipeline trains on the data too, so its job may name it, in the step that pulls and nowhere
# else. No workflow names a credential that writes to the remote (people push, with
# `mlops data track`).
DATA_READ_SECRETS = {"DVC_READ_CREDENTIALS"}
# The secrets of .gitlab-ci.yml a merge-request job may name: the MR note token (Reporter) and
# the job's own token.
MERGE_REQUEST_SECRETS = {"MLOPS_REPORT_TOKEN", "CI_JOB_TOKEN"}
BASELINE_ENVIRONMENT = "baseline"
# The environment whose secret is the training cluster's kubeconfig (the cluster path): only
# the manual train-cluster jobs declare it, and it holds no GitOps or registry credential.
TRAINING_ENVIRONMENT = "training"
CLUSTER_SECRETS = {"TRAINING_KUBECONFIG"}
UNTRUSTED_TRIGGERS = {
    "pull_request",
    "pull_request_target",
    "workflow_run",
    "issue_comment",
    "pull_request_review",
    "pull_request_review_comment",
}


def load(path: Path) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text())  # a key may be True, below
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow["on"]
    return {on} if isinstance(on, str) else set(on)


def secrets_in(node: Any) -> set[str]:
    """The secrets a job names. `secrets[...]`, `toJSON(secrets)` and `secrets: inherit` name
    them all at once: they count as "*", which no allow-list holds."""
    text = yaml.safe_dump(node)
    names = set(re.findall(r"\bsecrets\.([A-Za-z0-9_]+)", text))
    if re.search(r"\bsecrets\b(?!\.[A-Za-z0-9_])", text):
        names.add("*")
    return names


def test_secrets_in_sees_every_way_of_naming_a_secret() -> None:
    assert secrets_in({"env": {"T": "${{ secrets.GITOPS_READ_TOKEN }}"}}) == {"GITOPS_READ_TOKEN"}
    assert "*" in secrets_in({"env": {"T": "${{ secrets['GITOPS_READ_TOKEN'] }}"}})
    assert "*" in secrets_in({"env": {"T": "${{ toJSON(secrets) }}"}})
    assert "*" in secrets_in({"uses": "./.github/workflows/x.yml", "secrets": "inherit"})
    assert secrets_in({"env": {"T": "${{ github.token }}"}}) == set()


# ---------------------------------------------------------------------------------------------
# 1. Unmerged code never holds a credential that can write


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pull_request_jobs_hold_nothing_that_writes(path: Path) -> None:
    workflow = load(path)
    assert "pull_request_target" not in triggers(workflow)
    if not triggers(workflow) & UNTRUSTED_TRIGGERS:
        return
    assert workflow.get("permissions") == {}, "grant per job, nothing at the top"
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions", {})
        writes = {scope for scope, level in permissions.items() if level == "write"}
        assert writes <= {"pull-requests"}, f"{name}: {writes}"
        # Not even a read-only secret: for `pull_request` the workflow file is the pull
        # request's own, so a same-repository author could send any secret named here anywhere.
        extra = secrets_in(job) - PULL_REQUEST_SECRETS
        assert not extra, f"{path.name}:{name} (runs on pull requests) names secrets {extra}"
        # Nor an environment: its secrets would reach the pull request's code.
        assert "environment" not in job, name
        if "pull-requests" in writes:
            # The commenting job holds that token and nothing else, and runs no PR code: it
            # checks out the base commit and restores no cache a PR's run could have written.
            assert not secrets_in(job), f"{name} holds secrets beside pull-requests: write"
            # contents: read only lets it check out the base commit of a private repository.
            assert permissions == {"pull-requests": "write", "contents": "read"}
            steps = job["steps"]
            checkout = [s for s in steps if str(s.get("uses", "")).startswith("actions/checkout")]
            assert checkout, f"{name} must check out the base commit explicitly"
            for step in checkout:
                assert step["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
                assert step["with"]["persist-credentials"] is False
            for step in steps:
                assert not str(step.get("uses", "")).startswith("actions/cache")
                assert "cache" not in (step.get("with") or {}), f"{name}: {step}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_write_secrets_live_only_in_protected_environments(path: Path) -> None:
    workflow = load(path)
    for name, job in workflow["jobs"].items():
        if secrets_in(job) & WRITE_SECRETS:
            # Each runs the default branch's merged code (a schedule runs the default branch).
            assert triggers(workflow) <= {"push", "workflow_dispatch", "schedule"}, name
            if "push" in triggers(workflow):
                assert workflow["on"]["push"] == {"branches": ["main"]}
            assert job.get("environment") in ENVIRONMENTS, (
                f"{name}: a write secret must be an environment secret of a protected environment"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_read_secrets_live_only_in_the_default_branch_baseline_environment(path: Path) -> None:
    """The read credentials (production's state and model) are secrets of an environment that
    only the default branch reaches: the baseline export, on push, schedule or dispatch."""
    workflow = load(path)
    for name, job in workflow["jobs"].items():
        if secrets_in(job) & READ_SECRETS:
            assert triggers(workflow) <= {"push", "schedule", "workflow_dispatch"}, name
            if "push" in triggers(workflow):
                assert workflow["on"]["push"] == {"branches": ["main"]}
            assert job.get("environment") in {BASELINE_ENVIRONMENT, *ENVIRONMENTS}, (
                f"{path.name}:{name}: a read secret must be an environment secret"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_the_data_credential_reaches_only_the_step_that_pulls(path: Path) -> None:
    """DVC_READ_CREDENTIALS is handed to `make data-pull` alone, as MLOPS_DVC_CREDENTIALS,
    never to a job's env (every step would see it) nor to the step that runs the pipeline; a
    job that runs the pipeline pulls first. No other DVC secret (a write one) is named. It is
    an environment secret of `staging`: no job that runs a pull request's code names it."""
    workflow = load(path)
    for name, job in workflow["jobs"].items():
        if secrets_in(job) & DATA_READ_SECRETS:
            assert job.get("environment") == "staging", name
        dvc_secrets = {n for n in secrets_in(job) if "DVC" in n}
        assert dvc_secrets <= DATA_READ_SECRETS, f"{path.name}:{name}: {dvc_secrets}"
        assert not secrets_in(job.get("env") or {}) & DATA_READ_SECRETS, name
        runs = [str(s.get("run", "")) for s in job.get("steps", [])]
        for step in job.get("steps", []):
            if secrets_in(step) & DATA_READ_SECRETS:
                assert step["run"] == "make data-pull", f"{path.name}:{name}: {step}"
                assert step["env"] == {
                    "MLOPS_DVC_CREDENTIALS": "${{ secrets.DVC_READ_CREDENTIALS }}"
                }
        pipeline = [i for i, r in enumerate(runs) if re.search(r"\bmake (pipeline|retrain)\b", r)]
        # cluster-e2e runs the embedded default (scikit-learn's digits), which no remote holds.
        if pipeline and path.name != "cluster-e2e.yml":
            assert "make data-pull" in runs[: pipeline[0]], f"{path.name}:{name} pulls no data"


def test_gitlab_jobs_that_run_the_pipeline_pull_the_data_first() -> None:
    """GitLab hands MLOPS_DVC_CREDENTIALS (a project variable) to every job; mlops uses it only
    in `make data-pull`, which each job that runs the pipeline calls first."""
    for name, job in gitlab_jobs().items():
        script = job.get("script", [])
        runs = [
            i for i, line in enumerate(script) if re.search(r"\bmake (pipeline|retrain)\b", line)
        ]
        if runs:
            assert "make data-pull" in script[: runs[0]], name
        assert "DVC" not in yaml.safe_dump(job.get("variables", {})), name


def test_the_pull_request_gate_downloads_main_s_bundle_with_its_own_token() -> None:
    """ci.yml's gate takes its baseline from baseline.yml's newest successful run on the
    default branch, with GITHUB_TOKEN (actions: read), and baseline.yml never runs for a pull
    request (or it could publish the baseline every other pull request trusts)."""
    exporter = load(ROOT / ".github/workflows/baseline.yml")
    assert not triggers(exporter) & UNTRUSTED_TRIGGERS
    assert set(exporter["jobs"]) == {"models", "export"}
    assert exporter["jobs"]["export"]["environment"] == BASELINE_ENVIRONMENT
    upload = next(
        s
        for s in exporter["jobs"]["export"]["steps"]
        if str(s.get("uses", "")).startswith("actions/upload-artifact@")
    )
    folder = exporter["jobs"]["export"]["env"]["MLOPS_BASELINE"]
    assert upload["with"]["path"].rstrip("/") == folder

    job = load(ROOT / ".github/workflows/ci.yml")["jobs"]["pipeline"]
    assert job["permissions"] == {"contents": "read", "actions": "read"}
    assert job["env"]["MLOPS_BASELINE"] == folder
    steps = {s.get("id"): s for s in job["steps"]}
    find = steps["baseline"]
    assert "--workflow baseline.yml" in find["run"]
    assert '--branch "$DEFAULT_BRANCH"' in find["run"]
    assert "--status success" in find["run"]
    assert find["env"]["GH_TOKEN"] == "${{ github.token }}"
    download = next(
        s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact@")
    )
    assert download["with"]["name"] == upload["with"]["name"]
    assert download["with"]["path"] == folder
    assert download["with"]["run-id"] == "${{ steps.baseline.outputs.run-id }}"
    assert download["with"]["github-token"] == "${{ github.token }}"


def gitlab_jobs() -> dict[str, dict[str, Any]]:
    """The real jobs, with `extends:` resolved (variables merged, the rest replaced)."""
    data = yaml.safe_load(GITLAB.read_text())

    def resolve(name: str) -> dict[str, Any]:
        job = data[name]
        merged: dict[str, Any] = {}
        parents = job.get("extends", [])
        for parent in [parents] if isinstance(parents, str) else parents:
            base = resolve(parent)
            variables = {**merged.get("variables", {}), **base.get("variables", {})}
            merged.update(base)
            merged["variables"] = variables
        variables = {**merged.get("variables", {}), **job.get("variables", {})}
        merged.update({k: v for k, v in job.items() if k != "extends"})
        merged["variables"] = variables
        return merged

    reserved = {"workflow", "variables", "stages", "default", "include"}
    return {
        name: resolve(name) for name in data if name not in reserved and not name.startswith(".")
    }


def runs_for_merge_requests(job: dict[str, Any]) -> bool:
    return any(
        "merge_request_event" in rule.get("if", "") and rule.get("when") != "never"
        for rule in job.get("rules", [])
    )


def test_gitlab_merge_request_jobs_hold_at_most_the_reporter_token() -> None:
    jobs = gitlab_jobs()
    assert any(runs_for_merge_requests(job) for job in jobs.values())
    for name, job in jobs.items():
        text = yaml.safe_dump(job)
        if "REPORT_POST" in text or "--post" in text:
            # Posting names its token: never a project-wide GITLAB_TOKEN that can do more.
            assert job["variables"].get("GITLAB_TOKEN") == "$MLOPS_REPORT_TOKEN", name
        if runs_for_merge_requests(job):
            assert job["variables"].get("GITLAB_TOKEN", "$MLOPS_REPORT_TOKEN") == (
                "$MLOPS_REPORT_TOKEN"
            ), name
            for write in (
                "MLOPS_GITOPS_TOKEN",
                "MLOPS_GITLAB_TOKEN",
                "registry-login",
                "CI_REGISTRY_PASSWORD",
            ):
                assert write not in text, f"{name} (merge requests) uses {write}"
            named = set(
                re.findall(r"\$\{?([A-Z0-9_]*(?:TOKEN|PASSWORD|SECRET|KEY)[A-Z0-9_]*)", text)
            )
            extra = named - MERGE_REQUEST_SECRETS
            assert not extra, f"{name} (merge requests) names secrets {extra}"
        elif "MLOPS_GITLAB_TOKEN" in text or "registry-login" in text:
            # Writing jobs run only for the default branch (protected variables reach them).
            for rule in job["rules"]:
                assert "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rule["if"], name


def env_names(job: dict[str, Any]) -> dict[str, str]:
    """Every environment variable a GitHub job sets, job-level and per step, with its value."""
    names = dict(job.get("env") or {})
    for step in job.get("steps", []):
        names.update(step.get("env") or {})
    return {k: str(v) for k, v in names.items()}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_github_jobs_hand_gitops_tokens_to_their_own_variables(path: Path) -> None:
    """mlops pushes only with MLOPS_GITOPS_TOKEN; MLOPS_GITOPS_READ_TOKEN serves clones and
    fetches. A pull request's jobs set only the read one, with the read-only secret; the
    write one only ever holds the environment secret GITOPS_TOKEN."""
    workflow = load(path)
    untrusted = bool(triggers(workflow) & UNTRUSTED_TRIGGERS)
    for name, job in workflow["jobs"].items():
        env = env_names(job)
        if "MLOPS_GITOPS_READ_TOKEN" in env:
            assert env["MLOPS_GITOPS_READ_TOKEN"] == "${{ secrets.GITOPS_READ_TOKEN }}", name
            assert not untrusted, f"{path.name}:{name}: a pull request's job holds the read name"
        if "MLOPS_GITOPS_TOKEN" in env:
            assert not untrusted, f"{path.name}:{name}: a pull request's job holds the write name"
            assert env["MLOPS_GITOPS_TOKEN"] == "${{ secrets.GITOPS_TOKEN }}", name
            assert job.get("environment") in ENVIRONMENTS, name
    if path.name == "ci.yml":
        pipeline = env_names(workflow["jobs"]["pipeline"])
        assert not {k for k in pipeline if "GITOPS" in k or "REGISTRY" in k}


def test_gitlab_jobs_never_map_a_gitops_token() -> None:
    """GitLab's tokens come from the project's CI/CD variables, whose protection and
    environment scope decide which jobs get them: no job may copy one into another name, and
    a merge-request job names no GitOps token at all. The read token is protected too, so no
    merge-request pipeline receives it unasked (the header says so, and the README)."""
    for name, job in gitlab_jobs().items():
        for key, value in job["variables"].items():
            assert key not in ("MLOPS_GITOPS_TOKEN", "MLOPS_GITOPS_READ_TOKEN"), (name, key)
            assert "GITOPS" not in str(value) or "TOKEN" not in str(value), (name, key)
        if runs_for_merge_requests(job):
            assert "GITOPS_TOKEN" not in yaml.safe_dump(job), name
            assert "GITOPS_READ_TOKEN" not in yaml.safe_dump(job), name
    header = " ".join(
        line.lstrip("# ") for line in GITLAB.read_text().splitlines() if line.startswith("#")
    )
    described = re.search(r"MLOPS_GITOPS_READ_TOKEN (.*?) MLOPS_GITOPS_REMOTE", header)
    assert described, header
    assert "masked, protected" in described.group(1)
    assert "NOT protected" not in described.group(1)


def test_the_merge_request_gate_fetches_the_default_branch_bundle() -> None:
    """A merge request's gate compares against the bundle the default branch's `baseline` job
    exported, fetched with CI_JOB_TOKEN; that job never runs for a merge request."""
    data = yaml.safe_load(GITLAB.read_text())
    jobs = gitlab_jobs()
    exporter = jobs["baseline"]
    assert not runs_for_merge_requests(exporter)
    for rule in exporter["rules"]:
        assert "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rule["if"]
    assert "make baseline" in exporter["script"]
    folder = exporter["variables"]["MLOPS_BASELINE"]
    assert exporter["artifacts"]["paths"] == [f"{folder}/"]
    gate = data["gate"]
    (mr_rule,) = [r for r in gate["rules"] if "merge_request_event" in r["if"]]
    assert mr_rule["variables"] == {"MLOPS_BASELINE": folder}
    assert any("make baseline-fetch" in line for line in gate["script"])
    # The name `mlops baseline fetch` asks GitLab for (pipelines/stages/gate.py).
    from pipelines.stages.gate import BUNDLE_JOB

    assert BUNDLE_JOB == "baseline"


def gitlab_job_writes(job: dict[str, Any]) -> bool:
    """Does the job push to the GitOps repository or open requests there: a pipeline up to
    release or promote (the default UNTIL is promote), a rollback, or the write tokens."""
    for line in job.get("script", []) + job.get("after_script", []):
        if re.search(r"\bmake (rollback|release|promote|promote-merge|retrain)\b", line):
            return True
        if re.search(r"\bmake pipeline\b", line):
            until = re.search(r"\bUNTIL=(\w+)", line)
            if until is None or until.group(1) in ("release", "promote"):
                return True
    text = yaml.safe_dump(job)
    return "MLOPS_GITLAB_TOKEN" in text or "MLOPS_GITOPS_TOKEN" in text


def test_gitlab_jobs_that_write_declare_their_environment() -> None:
    """The write variables are protected and scoped to the environments staging and
    production (README): GitLab hands them only to jobs that declare one. So every job that
    writes declares its environment, and no other job declares one (it would receive them)."""
    writers = set()
    for name, job in gitlab_jobs().items():
        if gitlab_job_writes(job):
            writers.add(name)
            assert job.get("environment", {}).get("name") in ENVIRONMENTS, name
            assert not runs_for_merge_requests(job), name
        elif name == "train-cluster":
            # Its environment scopes the kubeconfig only; the write tokens are scoped to
            # staging and production, so they never reach it.
            assert job["environment"]["name"] == TRAINING_ENVIRONMENT
        else:
            assert "environment" not in job, f"{name} would receive the write tokens"
    assert writers == {"release", "promote", "rollback-staging", "rollback-production", "retrain"}


def test_readme_scopes_the_gitlab_write_tokens_to_environments() -> None:
    text = (ROOT / "README.md").read_text()
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| GitLab `MLOPS_GITOPS_TOKEN`, `MLOPS_GITLAB_TOKEN`")
    )
    assert "environment scope `staging` and `production`" in row
    for job in ("release", "promote", "rollback-staging", "rollback-production"):
        assert f"`{job}`" in row
    settings = next(line for line in text.splitlines() if line.startswith("| GitOps repository"))
    assert "`MLOPS_GITOPS_TOKEN` (masked, **protected**, **environment scope**" in settings
    # Protected variables reach every job of a protected ref's pipeline, not only the release
    # jobs: the README must not claim otherwise.
    flat = " ".join(text.split())
    assert "protected variables reach only jobs on protected refs" not in flat
    assert "reaches **every** job of a pipeline on a protected ref" in flat


def test_the_gitops_read_token_is_documented_as_read_only() -> None:
    """Where the settings are listed (README's tables, .gitlab-ci.yml's header), the read
    token is read-only: never given write scope."""
    lines = [
        ("README.md", line)
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("|")
    ]
    lines += [
        (".gitlab-ci.yml", line) for line in GITLAB.read_text().splitlines() if line.startswith("#")
    ]
    described = 0
    for where, line in lines:
        if "GITOPS_READ_TOKEN" not in line:
            continue
        described += 1
        assert re.search(r"\bread", line.replace("GITOPS_READ_TOKEN", "")), (where, line)
        # A row's cells, split further into clauses: what is said of the read token itself.
        for clause in re.split(r"[|;]", line):
            if "GITOPS_READ_TOKEN" in clause:
                for grant in re.findall(r"[^.(]*\bwrite\b[^.)]*", clause):
                    assert re.search(r"\b(never|not|no|cannot|without)\b", grant), (where, grant)
    assert described >= 4  # README: the settings row and both credentials rows; GitLab's header


def test_gitlab_caches_are_split_by_protection() -> None:
    data = yaml.safe_load(GITLAB.read_text())
    caches = data["default"]["cache"]
    assert caches
    for cache in caches:
        assert "$CI_COMMIT_REF_PROTECTED" in yaml.safe_dump(cache["key"]), cache
    for name, job in gitlab_jobs().items():
        assert "cache" not in job, f"{name} overrides the protected/unprotected cache split"


# ---------------------------------------------------------------------------------------------
# 2. No user value reaches a shell; environments are named by the CI files only


def test_environments_are_named_by_the_ci_files_never_by_a_value() -> None:
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            env = job.get("environment")
            if env is not None:
                env_name = env["name"] if isinstance(env, dict) else env
                # The deployment environments, the one that holds the baseline's read secrets,
                # or the training cluster's.
                assert env_name in {
                    *ENVIRONMENTS,
                    BASELINE_ENVIRONMENT,
                    TRAINING_ENVIRONMENT,
                }, f"{path.name}:{name}: environment {env_name!r}"
    for name, job in gitlab_jobs().items():
        if "environment" in job:
            allowed = {*ENVIRONMENTS, *([TRAINING_ENVIRONMENT] if name == "train-cluster" else [])}
            assert job["environment"]["name"] in allowed, f"{name}: {job['environment']}"
            # ENV, where the job sets it, is its environment's name and nothing can override it.
            assert "ENV" not in job["variables"]
            for line in job["script"]:
                for env in re.findall(r"\bENV=(\S*)", line):
                    assert env == job["environment"]["name"], (name, line)


def test_one_rollback_job_per_environment_everywhere() -> None:
    rollback = load(ROOT / ".github/workflows/rollback.yml")
    options = rollback["on"]["workflow_dispatch"]["inputs"]["environment"]["options"]
    assert sorted(options) == ENVIRONMENTS
    github = {job["environment"]: job for job in rollback["jobs"].values()}
    assert sorted(github) == ENVIRONMENTS
    for env, job in github.items():
        assert job["if"] == f"${{{{ inputs.environment == '{env}' }}}}"
        assert job["env"]["ENV"] == env
        runs = [s["run"] for s in job["steps"] if "run" in s]
        assert runs[0] == "make check-inputs", "the model input is checked before anything"
    gitlab = {
        job["environment"]["name"]: job
        for name, job in gitlab_jobs().items()
        if name.startswith("rollback")
    }
    assert sorted(gitlab) == ENVIRONMENTS
    for env, job in gitlab.items():
        # In the script line: a pipeline variable would override a job variable.
        assert "ENV" not in job["variables"]
        assert job["script"] == [f"ENV={env} make rollback"]
        assert job["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "when": "manual"}]


def shell_lines() -> Iterator[tuple[str, str]]:
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            for step in job.get("steps", []):
                if "run" in step:
                    yield f"{path.name}:{name}", step["run"]
    data = yaml.safe_load(GITLAB.read_text())
    for name, job in data.items():
        if isinstance(job, dict):
            for key in ("before_script", "script", "after_script"):
                for line in job.get(key, []):
                    yield f".gitlab-ci.yml:{name}", line


def test_ci_files_hand_values_to_make_through_the_environment_only() -> None:
    seen = 0
    for where, line in shell_lines():
        assert "${{" not in line, f"{where}: an expression inside run: {line!r}"
        for call in re.findall(r"\bmake\b[^\n;&|]*", line):
            seen += 1
            # `make VAR=value` makes VAR a make variable, expanded on export: never that.
            assert not re.search(r"\s[A-Za-z_][A-Za-z0-9_]*=", call), f"{where}: {call!r}"
    assert seen > 10


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a value given to make ran as a command"


def hostile(canary: Path) -> list[str]:
    return [
        f"x; touch {canary}",
        f"$(shell touch {canary})",
        f"$$(touch {canary})",
        f"`touch {canary}`",
        f"digits'; touch {canary}; '",
        f'digits"; touch {canary}; "',
        f"digits\ntouch {canary}",
    ]


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "MODEL",
            "ENV",
            "UNTIL",
            "MAKEFLAGS",
            "MLOPS_VENV",
            "MLOPS_INSTALL",
            "REPORT_POST",
            "MLOPS_BASELINE",
        )
    }
    base["MLOPS_VENV"] = str(VENV_BIN.parent)
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "var",
    [
        "MODEL",
        "ENV",
        "UNTIL",
        "PYTEST_ARGS",
        "REPORT_SUMMARY",
        "REPORT_METRICS",
        "REPORT_POST",
        "MLOPS_VENV",
        "MLOPS_INSTALL",
        "MLOPS_BASELINE",
        "SINCE",
        "FAIL_ON",
        "MONITOR_OUTPUT",
        "MONITOR_FAILING",
        "MONITOR_MODELS",
        "CLUSTER_JOB",
    ],
)
@pytest.mark.parametrize("where", ["command line", "environment"])
def test_make_never_pastes_a_value_into_a_recipe(var: str, where: str, canary: Path) -> None:
    targets = (
        "run",
        "pipeline",
        "report",
        "release",
        "promote",
        "promote-merge",
        "rollback",
        "status",
        "baseline",
        "baseline-fetch",
        "unit",
        "test",
        "monitor",
        "retrain",
        "cluster-job",
        "data-pull",
        "ci-models",
    )
    for value in hostile(canary):
        if where == "command line":
            result = make("-n", *targets, f"{var}={value}")
        else:
            result = make("-n", *targets, env={var: value})
        assert result.returncode == 0, result.stderr
        assert "-m pipelines.cli rollback" in result.stdout  # the recipes were printed
        assert value not in result.stdout.replace(f"${var}", ""), result.stdout
        assert not canary.exists(), (var, value, result.stdout)


@pytest.mark.parametrize(
    ("var", "target"),
    [
        ("MODEL", "rollback"),
        ("ENV", "rollback"),
        ("MODEL", "status"),
        ("MODEL", "report"),
        ("ENV", "release"),
        ("REPORT_POST", "report"),
        ("SINCE", "monitor"),
        ("FAIL_ON", "monitor"),
        ("ENV", "monitor"),
        ("MONITOR_FAILING", "retrain"),
        ("MONITOR_MODELS", "retrain"),
        ("CLUSTER_JOB", "cluster-job"),
        ("MODEL", "cluster-job"),
    ],
)
def test_make_refuses_a_hostile_value_before_running_anything(
    var: str, target: str, canary: Path
) -> None:
    for value in hostile(canary):
        for result in (make(target, f"{var}={value}"), make(target, env={var: value})):
            assert result.returncode == 2, result.stdout + result.stderr
            assert f"check-inputs: {var}=" in result.stderr
            assert "is not" in result.stderr
            assert "use one of" in result.stderr
            assert not canary.exists(), (target, var, value)


def check_inputs(**values: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL", "ENV", "UNTIL", "REPORT_POST")}
    return subprocess.run(
        [str(ROOT / "scripts/check-inputs.sh")],
        env={**env, **values},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    "env",
    [
        "./production",
        "production/",
        "Production",
        " production",
        "production ",
        "production\n",
        "../environments/production",
        "manifests/environments/production",
        "production.yaml",
        "",
        "*",
        "prod*",
        "staging production",
    ],
)
def test_an_alias_of_an_environment_is_refused(env: str) -> None:
    result = check_inputs(ENV=env)
    assert result.returncode == 2
    assert "ENV=" in result.stderr
    assert "production staging" in result.stderr


@pytest.mark.parametrize(
    "model", ["./digits", "digits/", "Digits", "../models/digits", "", "dig*", "digits "]
)
def test_an_alias_of_a_model_is_refused(model: str) -> None:
    result = check_inputs(MODEL=model)
    assert result.returncode == 2
    assert "MODEL=" in result.stderr


def test_every_defined_name_passes() -> None:
    assert ENVIRONMENTS
    assert MODELS
    for env in ENVIRONMENTS:
        for model in MODELS:
            for until in PIPELINE:
                result = check_inputs(ENV=env, MODEL=model, UNTIL=until)
                assert result.returncode == 0, result.stderr
    assert check_inputs(UNTIL="deploy").returncode == 2


def report_args(
    tmp_path: Path, post: str
) -> tuple[subprocess.CompletedProcess[str], list[str] | None]:
    """`make report` for real, with REPORT_POST=post, its interpreter a stub that records its
    arguments (setup is not remade: no environment is needed)."""
    bin_dir = tmp_path / "venv/bin"
    bin_dir.mkdir(parents=True)
    args_file = tmp_path / "args"
    stub = bin_dir / "python"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    stub.chmod(0o755)
    result = make(
        "-o",
        "setup",
        "report",
        env={
            "MLOPS_VENV": str(tmp_path / "venv"),
            "ARGS_FILE": str(args_file),
            "REPORT_POST": post,
        },
    )
    args = args_file.read_text().splitlines() if args_file.exists() else None
    return result, args


@pytest.mark.parametrize(("post", "posts"), [("1", True), ("0", False), ("", False)])
def test_only_report_post_1_posts(tmp_path: Path, post: str, posts: bool) -> None:
    result, args = report_args(tmp_path, post)
    assert result.returncode == 0, result.stdout + result.stderr
    assert args is not None
    assert args[:4] == ["-m", "pipelines.cli", "report", "--model"]
    assert ("--post" in args) is posts, args
    assert "" not in args  # no empty word stands in for a missing --post


@pytest.mark.parametrize(
    "post", ["yes", "true", "on", "2", " 1", "1 ", "01", "-1", "--post", "0 --post", "1\n"]
)
def test_any_other_report_post_is_refused(tmp_path: Path, post: str) -> None:
    result, args = report_args(tmp_path, post)
    assert result.returncode == 2, result.stdout + result.stderr
    assert args is None, "nothing ran"
    assert "check-inputs: REPORT_POST=" in result.stderr
    assert "is not empty, 0 or 1" in result.stderr
    direct = check_inputs(REPORT_POST=post)
    assert direct.returncode == 2
    assert "REPORT_POST=" in direct.stderr
    for good in ("", "0", "1"):
        assert check_inputs(REPORT_POST=good).returncode == 0


def stub_make(
    tmp_path: Path, target: str, code: int = 0, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str] | None]:
    """`make target` for real, its interpreter a stub that records its arguments and exits
    with ``code`` (setup is not remade)."""
    bin_dir = tmp_path / "venv/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    args_file = tmp_path / "args"
    args_file.unlink(missing_ok=True)
    stub = bin_dir / "python"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\nexit {code}\n')
    stub.chmod(0o755)
    result = make(
        "-o",
        "setup",
        target,
        env={"MLOPS_VENV": str(tmp_path / "venv"), "ARGS_FILE": str(args_file), **env},
    )
    args = args_file.read_text().splitlines() if args_file.exists() else None
    return result, args


@pytest.mark.parametrize(("code", "status"), [(0, 0), (1, 0), (2, 2), (3, 2)])
def test_make_monitor_hands_on_the_drift_verdict_and_fails_on_anything_else(
    tmp_path: Path, code: int, status: int
) -> None:
    """With MONITOR_OUTPUT, mlops appends its verdict there (--verdict; what it writes:
    tests/integration/test_monitor.py) and exit 1 (a FAIL_ON condition holds) is a verdict for
    the next job, not a failure; bad input (2) and an unreachable Prometheus (3) still fail the
    job. (make reports any failed recipe as 2.)"""
    output = tmp_path / "runner dir" / "output"
    result, args = stub_make(
        tmp_path,
        "monitor",
        code,
        ENV="production",
        FAIL_ON="drift errors",
        SINCE="6h",
        MONITOR_OUTPUT=str(output),
    )
    assert result.returncode == status, result.stdout + result.stderr
    assert args == [
        "-m", "pipelines.cli", "monitor", "--env", "production", "--since", "6h",
        "--fail-on", "drift", "errors", "--verdict", str(output),
    ]  # fmt: skip
    assert not output.exists()  # make writes nothing there itself: only mlops does
    # Without MONITOR_OUTPUT, a condition that holds fails make, as it fails mlops.
    alone, args = stub_make(tmp_path, "monitor", code, ENV="production")
    assert alone.returncode == (0 if code == 0 else 2)
    assert args == ["-m", "pipelines.cli", "monitor", "--env", "production", "--since", "1h"]


@pytest.mark.parametrize(
    ("failing", "models", "model", "runs"),
    [
        ("true", '["digits"]', "digits", True),
        ("true", '["diabetes","digits"]', "diabetes", True),
        ("true", '["diabetes","digits"]', "digits", True),
        # Another model drifted: this one is not retrained.
        ("true", '["diabetes"]', "digits", False),
        ("true", '["digits"]', "diabetes", False),
        ("true", "[]", "digits", False),
        ("true", "", "digits", False),
        ("false", "[]", "digits", False),
        ("false", '["digits"]', "digits", False),
        ("", "", "digits", False),
    ],
)
def test_make_retrain_runs_the_pipeline_through_promote_only_for_a_drifting_model(
    tmp_path: Path, failing: str, models: str, model: str, runs: bool
) -> None:
    result, args = stub_make(
        tmp_path, "retrain", MONITOR_FAILING=failing, MONITOR_MODELS=models, MODEL=model
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if runs:
        assert args == [
            "-m", "pipelines.cli", "run", "--model", model, "--until", "promote",
        ]  # fmt: skip
    else:
        assert args is None
        assert f"the monitor found nothing to act on for {model}" in result.stdout
    # GitLab's retrain job asks first, so a model that did not drift logs in and pulls nothing.
    asked, _ = stub_make(
        tmp_path, "drifting", MONITOR_FAILING=failing, MONITOR_MODELS=models, MODEL=model
    )
    assert asked.returncode == (0 if runs else 2), asked.stdout + asked.stderr
    assert ("nothing to act on" in asked.stdout) is not runs


def test_check_inputs_allows_monitor_models_only_as_a_compact_json_array_of_models() -> None:
    """MONITOR_MODELS is what `mlops monitor --verdict` writes, exactly; `make retrain` looks
    for "MODEL" in it, so nothing but model names may be there."""
    for good in ("", "[]", '["digits"]', '["diabetes"]', '["diabetes","digits"]'):
        result = check_inputs(MONITOR_MODELS=good)
        assert result.returncode == 0, (good, result.stderr)
    for bad in (
        '["nosuch"]',
        '["digits","nosuch"]',
        '["digits",]',
        "digits",
        "[digits]",
        '["digits"];rm -rf /',
        '[ "digits" ]',
        '["digits", "diabetes"]',
        '["Digits"]',
        '[""]',
        '["digits"]\n',
        '["digits""]',
        '["../digits"]',
        "[",
    ):
        result = check_inputs(MONITOR_MODELS=bad)
        assert result.returncode == 2, bad
        assert "check-inputs: MONITOR_MODELS=" in result.stderr
        assert "is not a compact JSON array of model names" in result.stderr


def test_check_inputs_knows_exactly_the_monitor_conditions() -> None:
    from pipelines.core.monitor import CONDITIONS

    text = (ROOT / "scripts/check-inputs.sh").read_text()
    found = re.search(r"^CONDITIONS=\((.*)\)$", text, re.MULTILINE)
    assert found is not None
    assert tuple(found.group(1).split()) == CONDITIONS
    for good in ("", "drift", "drift errors", "latency anomalies"):
        assert check_inputs(FAIL_ON=good).returncode == 0, good
    for bad in ("drifts", "drift,errors", "drift  errors", " drift", "drift\n", "*"):
        result = check_inputs(FAIL_ON=bad)
        assert result.returncode == 2, bad
        assert "FAIL_ON=" in result.stderr
    for good in ("1h", "30m", "1d12h", "90s"):
        assert check_inputs(SINCE=good).returncode == 0, good
    for bad in ("", "1 h", "1H", "h", "1h;x", "-1h", "1.5h"):
        assert check_inputs(SINCE=bad).returncode == 2, bad


def test_the_scheduled_loop_reads_in_one_job_and_writes_in_another() -> None:
    """GitHub: the monitor job holds no write secret, only the read ones of the `baseline`
    environment (main only); the retrain job runs only on its drift verdict, in staging (like
    release.yml). GitLab: both jobs run only in scheduled pipelines of the default branch, and
    no other job of this file but the baseline export runs there."""
    workflow = load(ROOT / ".github/workflows/monitor.yml")
    assert triggers(workflow) == {"schedule", "workflow_dispatch"}
    monitor, retrain = workflow["jobs"]["monitor"], workflow["jobs"]["retrain"]
    assert monitor["permissions"] == {"contents": "read"}
    assert monitor["environment"] == "baseline"
    assert secrets_in(monitor) <= READ_SECRETS
    assert monitor["env"]["ENV"] == "production"
    assert monitor["env"]["FAIL_ON"] == "drift"
    runs = [s["run"] for s in monitor["steps"] if "run" in s]
    assert runs == ["make check-inputs", 'MONITOR_OUTPUT="$GITHUB_OUTPUT" make monitor']
    assert monitor["outputs"] == {
        "failing": "${{ steps.monitor.outputs.MONITOR_FAILING }}",
        "models": "${{ steps.monitor.outputs.MONITOR_MODELS }}",
    }
    # Only the drifting models retrain: the matrix is the monitor's list, and only on drift
    # (an empty matrix is an error). The list reaches make through env:, never run:.
    assert retrain["needs"] == ["monitor"]
    assert "models" not in workflow["jobs"]
    assert retrain["if"] == "${{ needs.monitor.outputs.failing == 'true' }}"
    assert retrain["strategy"]["matrix"] == {
        "model": "${{ fromJSON(needs.monitor.outputs.models) }}"
    }
    assert retrain["env"]["MODEL"] == "${{ matrix.model }}"
    assert retrain["env"]["MONITOR_FAILING"] == "${{ needs.monitor.outputs.failing }}"
    assert retrain["env"]["MONITOR_MODELS"] == "${{ needs.monitor.outputs.models }}"
    assert "${{ matrix.model }}" in retrain["name"]
    assert not any("${{" in s.get("run", "") for s in retrain["steps"])
    assert retrain["environment"] == "staging"
    assert (
        retrain["concurrency"]["group"]
        == load(ROOT / ".github/workflows/release.yml")["concurrency"]["group"]
    )
    assert [s["run"] for s in retrain["steps"] if "run" in s][-1] == "make retrain"
    jobs = gitlab_jobs()
    scheduled = '$CI_PIPELINE_SOURCE == "schedule" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH'
    for name in ("monitor", "retrain"):
        assert jobs[name]["rules"] == [{"if": scheduled}], name
    assert "environment" not in jobs["monitor"]
    assert jobs["monitor"]["script"] == [
        "ENV=production FAIL_ON=drift MONITOR_OUTPUT=monitor.env make monitor"
    ]
    assert jobs["monitor"]["artifacts"]["reports"]["dotenv"] == "monitor.env"
    assert jobs["retrain"]["needs"] == ["monitor"]
    # Inputs checked first (a bad one fails the job), then a model that did not drift ends the
    # job before anything uses a credential.
    assert jobs["retrain"]["script"] == [
        "make check-inputs",
        "if ! make -s drifting; then exit 0; fi",
        "make registry-login",
        "make data-pull",
        "make retrain",
    ]
    for name, job in jobs.items():
        if name in ("monitor", "retrain", "baseline", "train-cluster") or name.startswith(
            "rollback"
        ):
            continue  # rollbacks and train-cluster: manual buttons on any default-branch run
        for rule in job["rules"]:
            condition = " ".join(rule["if"].split())
            assert "merge_request_event" in condition or (
                '$CI_PIPELINE_SOURCE != "schedule"' in condition
            ), name


@pytest.fixture(scope="module")
def gitlab_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git project holding only `.gitlab-ci.yml`: enough for gitlab-ci-local to list jobs."""
    require("gitlab-ci-local", GCL.is_file(), "run `make ci-tools` (npm)")
    root = tmp_path_factory.mktemp("gitlab-jobs")
    shutil.copy(GITLAB, root / ".gitlab-ci.yml")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([*git, "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], cwd=root, check=True)
    return root


def listed_jobs(root: Path, **variables: str) -> dict[str, str]:
    """The jobs gitlab-ci-local's rule evaluation puts in a pipeline: {name: when}."""
    args = [str(GCL), "--list", "--no-color"]
    for key, value in variables.items():
        args += ["--variable", f"{key}={value}"]
    env = {**os.environ, "GCL_IGNORE_PREDEFINED_VARS": ",".join(variables)}
    out = subprocess.run(
        args, cwd=root, env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    header = next(i for i, line in enumerate(out) if line.split()[:2] == ["name", "description"])
    jobs = {}
    for line in out[header + 1 :]:
        # A per-model job is listed as `gate: [digits]`: its name is `gate`.
        m = re.match(r"(\S+?)(?:: \[[^\]]*\])?\s+(\S+)\s+(\S+)", line)
        if m:
            jobs[m.group(1)] = m.group(3)
    return jobs


@pytest.mark.parametrize(
    ("source", "branch", "expected"),
    [
        ("schedule", "main", {"baseline", "monitor", "retrain"}),
        ("schedule", "feature", set()),
        ("push", "main", {"test", "validate", "gate", "release", "promote"}),
        ("web", "main", set()),
    ],
)
def test_gitlab_schedules_run_the_loop_and_nothing_else(
    gitlab_project: Path, source: str, branch: str, expected: set[str]
) -> None:
    """GitLab's own rule evaluation (gitlab-ci-local): a scheduled pipeline of the default
    branch runs the baseline export, monitor and retrain and no other automatic job; no other
    pipeline runs monitor or retrain."""
    jobs = listed_jobs(
        gitlab_project,
        CI_PIPELINE_SOURCE=source,
        CI_COMMIT_BRANCH=branch,
        CI_DEFAULT_BRANCH="main",
    )
    automatic = {name for name, when in jobs.items() if when != "manual"}
    if source == "schedule":
        assert automatic == expected, jobs
    else:
        assert expected <= automatic, jobs
        assert not automatic & {"monitor", "retrain"}, jobs


def test_check_inputs_knows_exactly_the_pipeline_stages() -> None:
    text = (ROOT / "scripts/check-inputs.sh").read_text()
    stages = re.search(r"^STAGES=\((.*)\)$", text, re.MULTILINE)
    assert stages is not None
    assert stages.group(1).split() == PIPELINE


# ---------------------------------------------------------------------------------------------
# 4. No rule of ours skips a merge-request pipeline; [skip ci] is answered by settings


# The jobs of ci.yml whose checks branch protection must require: the gates of a pull request.
REQUIRED_JOBS = ("test", "gate")
# The jobs whose results the aggregating `gate` check stands for: the model list and the
# per-model matrix.
AGGREGATED_JOBS = ["models", "pipeline"]


def readme_flat() -> str:
    return " ".join((ROOT / "README.md").read_text().split())


def test_readme_requires_exactly_the_checks_ci_yml_reports() -> None:
    """[skip ci] skips a pull request's workflow; only required status checks stop its merge.
    Their names are the jobs' names: renaming a job without updating the README (and the
    branch protection it describes) fails here."""
    ci_text = (ROOT / ".github/workflows/ci.yml").read_text()
    ci = load(ROOT / ".github/workflows/ci.yml")
    assert "pull_request" in triggers(ci)
    checks = set()
    for job_id in REQUIRED_JOBS:
        job = ci["jobs"][job_id]
        # A required check must report on every pull request: no condition may skip it (a
        # skipped job's check counts as passed). `!cancelled()` only makes it run when a job
        # it needs failed, so that it can fail too.
        assert job.get("if", "${{ !cancelled() }}") == "${{ !cancelled() }}", job_id
        assert "matrix" not in (job.get("strategy") or {}), job_id  # a matrix renames checks
        checks.add(str(job.get("name", job_id)))
    text = readme_flat()
    listed = re.search(
        r"\*\*require status checks to pass\*\* with the checks (.*?) \(GitHub", text
    )
    assert listed, "README must list the required checks"
    named = set(re.findall(r"`([^`]+)`", listed.group(1)))
    assert named == checks, f"README requires {named}; ci.yml reports {checks}"
    header = " ".join(line.lstrip("# ") for line in ci_text.splitlines() if line.startswith("#"))
    for check in checks:
        assert f'"{check}"' in header, f"ci.yml's header must name the check {check!r}"
    # Every other check the README calls required exists too.
    for quoted in re.findall(r"required check `([^`]+)`", text):
        assert quoted in checks, quoted


def test_the_required_gate_check_stands_for_every_model() -> None:
    """The per-model jobs' checks are named after the models, so branch protection cannot
    require them; the `gate` job (a stable name) needs them all, runs even when one failed,
    and passes only when each of them succeeded: a failed, skipped or cancelled matrix fails it."""
    jobs = load(ROOT / ".github/workflows/ci.yml")["jobs"]
    gate = jobs["gate"]
    assert gate["needs"] == AGGREGATED_JOBS
    assert gate["permissions"] == {}
    assert not secrets_in(gate)
    (step,) = gate["steps"]
    for need in AGGREGATED_JOBS:
        var = f"{need.upper()}_RESULT"
        assert step["env"][var] == f"${{{{ needs.{need}.result }}}}"
        assert f'[ "${var}" = success ]' in step["run"]
    matrix = jobs["pipeline"]["strategy"]["matrix"]
    assert matrix == {"model": "${{ fromJSON(needs.models.outputs.models) }}"}
    assert jobs["pipeline"]["env"]["MODEL"] == "${{ matrix.model }}"
    for name in ("models", "gate"):
        assert "strategy" not in jobs[name]
    # `if [ a ] && [ b ]` fails for anything but two successes (bash, as the runner runs it).
    for models, pipeline, ok in [
        ("success", "success", True),
        ("success", "failure", False),
        ("success", "skipped", False),
        ("failure", "skipped", False),
        ("success", "cancelled", False),
    ]:
        env = {"MODELS_RESULT": models, "PIPELINE_RESULT": pipeline, "PATH": os.environ["PATH"]}
        done = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True)
        assert (done.returncode == 0) is ok, (models, pipeline)


# monitor.yml's retrain matrix is the drifting models, not every folder: see
# test_the_scheduled_loop_reads_in_one_job_and_writes_in_another.
@pytest.mark.parametrize("workflow", ["ci.yml", "release.yml", "baseline.yml"])
def test_per_model_jobs_take_the_model_from_the_listed_matrix(workflow: str) -> None:
    """Each per-model job gets MODEL from `matrix.model`, the matrix from the `models` job,
    which runs `make -s ci-models` (scripts/ci-models.py) into its output."""
    jobs = load(ROOT / ".github/workflows" / workflow)["jobs"]
    lister = jobs["models"]
    assert lister["permissions"] == {"contents": "read"}
    assert not secrets_in(lister)
    assert "environment" not in lister
    (step,) = [s for s in lister["steps"] if s.get("id") == "list"]
    assert step["run"] == 'make -s ci-models >> "$GITHUB_OUTPUT"'
    assert lister["outputs"]["models"] == "${{ steps.list.outputs.models }}"
    per_model = [n for n, j in jobs.items() if "matrix" in (j.get("strategy") or {})]
    assert per_model
    for name in per_model:
        job = jobs[name]
        assert "models" in ([job["needs"]] if isinstance(job["needs"], str) else job["needs"])
        assert job["strategy"]["matrix"] == {
            "model": "${{ fromJSON(needs.models.outputs.models) }}"
        }
        assert job["env"]["MODEL"] == "${{ matrix.model }}", name
        assert "${{ matrix.model }}" in job["name"], f"{name}: its check must name the model"
        for s in job["steps"]:
            if str(s.get("uses", "")).startswith(("actions/upload-artifact@", "actions/cache@")):
                named = s["with"].get("name", s["with"].get("key", ""))
                assert "${{ matrix.model }}" in named, f"{name}: one artifact/cache per model"


@pytest.mark.parametrize(
    ("workflow", "job"), [("release.yml", "release"), ("monitor.yml", "retrain")]
)
def test_the_release_matrix_releases_one_model_at_a_time(workflow: str, job: str) -> None:
    release = load(ROOT / ".github/workflows" / workflow)["jobs"][job]
    assert release["strategy"]["max-parallel"] == 1
    assert release["strategy"]["fail-fast"] is False


def ci_models(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "ci-models"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_matrix_has_one_entry_per_model_folder(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    assert ci_models(root).stdout == f"models={json.dumps(MODELS, separators=(',', ':'))}\n"
    shutil.copytree(root / "models/digits", root / "models/churn")
    (root / "models/.hidden").mkdir()  # the shell's models/*/ skips it, and so does the list
    done = ci_models(root)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("models=")
    assert json.loads(line.removeprefix("models=")) == sorted([*MODELS, "churn"])


@pytest.mark.parametrize("folder", ["Churn", "churn_v2", "$(id)", "-x"])
def test_a_model_folder_that_is_no_model_name_fails_the_list(tmp_path: Path, folder: str) -> None:
    root = copy_repo(tmp_path / "repo")
    (root / "models" / folder).mkdir()
    done = ci_models(root)
    assert done.returncode == 2
    assert done.stdout == ""  # nothing reaches $GITHUB_OUTPUT
    assert json.dumps(folder) in done.stderr
    assert "rename the folder" in done.stderr


def test_no_model_folder_fails_the_list(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    shutil.rmtree(root / "models")
    (root / "models").mkdir()
    done = ci_models(root)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "no model folder" in done.stderr


# The GitLab jobs that run once per model (`parallel: matrix` over MODEL).
GITLAB_PER_MODEL = {
    "validate",
    "train",
    "gate",
    "baseline",
    "package",
    "verify",
    "release",
    "promote",
    "retrain",
}


def test_gitlab_runs_every_model_folder() -> None:
    """GitLab creates the pipeline from .gitlab-ci.yml alone: its model list must be the
    folders of models/, and every per-model job must use it (and nothing else sets MODEL)."""
    data = yaml.safe_load(GITLAB.read_text())
    assert data[".per_model"] == {"parallel": {"matrix": [{"MODEL": MODELS}]}}, (
        f".gitlab-ci.yml's .per_model must list exactly the model folders {MODELS}"
    )
    jobs = gitlab_jobs()
    per_model = {name for name, job in jobs.items() if "parallel" in job}
    assert per_model == GITLAB_PER_MODEL
    for name in per_model:
        assert ".per_model" in data[name]["extends"], name
        assert "MODEL" not in data[name].get("variables", {}), name


def test_the_gitlab_baseline_fetch_asks_for_the_model_s_own_job() -> None:
    from pipelines.stages.gate import bundle_job

    assert bundle_job("digits") == "baseline: [digits]"  # GitLab's name of a matrix job
    assert "baseline" in GITLAB_PER_MODEL


def test_readme_lists_the_gitlab_merge_checks() -> None:
    text = readme_flat()
    settings = text[text.index("Repository settings a fork must turn on.**") :]
    for setting in (
        '**"Pipelines must succeed"** on',
        "`only_allow_merge_if_pipeline_succeeds: true`",
        '**"Skipped pipelines are considered successful"** off',
        "`allow_merge_on_skipped_pipeline: false`",
        "`[skip ci]`",
        "ci.skip",
    ):
        assert setting in settings, setting
    header = " ".join(
        line.lstrip("# ") for line in GITLAB.read_text().splitlines() if line.startswith("#")
    )
    assert '"Pipelines must succeed" on' in header
    assert '"Skipped pipelines are considered successful" off' in header
    # The README no longer says the rules guarantee a merge request its pipeline.
    assert "a merge request always gets its pipeline" not in text
    assert "switch its own pipeline off" not in text


BOT = "mlops-bot <mlops-bot@users.noreply.invalid>"
RELEASE_MESSAGE = "release(staging): digits r1\n\nRelease-Id: r1\nGate: blessed"


@pytest.fixture(scope="module")
def rules_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose only job has `.gitlab-ci.yml`'s workflow rules as its rules, so
    gitlab-ci-local evaluates them as GitLab would: listed means a pipeline is created."""
    require("gitlab-ci-local", GCL.is_file(), "run `make ci-tools` (npm)")
    root = tmp_path_factory.mktemp("rules")
    data = yaml.safe_load(GITLAB.read_text())
    probe = {
        "variables": data["variables"],
        "probe": {"script": ["true"], "rules": data["workflow"]["rules"]},
    }
    (root / ".gitlab-ci.yml").write_text(yaml.safe_dump(probe))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=root, check=True)
    return root


def pipeline_created(root: Path, **variables: str) -> bool:
    args = [str(GCL), "--list", "--no-color"]
    for key, value in variables.items():
        args += ["--variable", f"{key}={value}"]
    env = {**os.environ, "GCL_IGNORE_PREDEFINED_VARS": ",".join(variables)}
    result = subprocess.run(
        args, cwd=root, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return any(line.split()[:1] == ["probe"] for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    "message",
    [
        "release(staging): x",
        "promote(production): x",
        "rollback(staging): x",
        RELEASE_MESSAGE,
        "rollback(production): x\n\nRollback-Of: r1",
    ],
)
@pytest.mark.parametrize("author", [BOT, "Dev <dev@example.invalid>"])
def test_a_merge_request_always_gets_its_pipeline(
    rules_probe: Path, message: str, author: str
) -> None:
    assert pipeline_created(
        rules_probe,
        CI_PIPELINE_SOURCE="merge_request_event",
        CI_COMMIT_BRANCH="",
        CI_COMMIT_MESSAGE=message,
        CI_COMMIT_AUTHOR=author,
        CI_MERGE_REQUEST_IID="7",
    )


@pytest.mark.parametrize(
    ("author", "message", "skipped"),
    [
        (BOT, RELEASE_MESSAGE, True),
        (BOT, "rollback(production): x\n\nRollback-Of: r1", True),
        (BOT, "release(staging): no trailer", False),
        ("Dev <dev@example.invalid>", RELEASE_MESSAGE, False),
        ("Dev <dev@example.invalid>", "release(staging): x", False),
    ],
)
def test_only_mlops_own_default_branch_commits_are_skipped(
    rules_probe: Path, author: str, message: str, skipped: bool
) -> None:
    created = pipeline_created(
        rules_probe,
        CI_PIPELINE_SOURCE="push",
        CI_COMMIT_BRANCH="main",
        CI_COMMIT_MESSAGE=message,
        CI_COMMIT_AUTHOR=author,
    )
    assert created is not skipped


# ---------------------------------------------------------------------------------------------
# 3. A cached virtualenv is checked, not trusted


def fake_checkout(root: Path, pin: str, venv: Path | None = None) -> Path:
    """A checkout with the real bootstrap scripts and a one-package environment, as a CI cache
    would restore it (stamp included), in the checkout's .venv or at ``venv``."""
    (root / "scripts").mkdir(parents=True)
    for name in ("bootstrap.sh", "verify-venv.py"):
        shutil.copy2(ROOT / "scripts" / name, root / "scripts" / name)
    (root / "pyproject.toml").write_text("[project]\nname = 'mlops-gitops'\nversion = '0'\n")
    (root / "constraints.txt").write_text(f"foo=={pin}\n")
    venv = venv or root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*")) / "site-packages"
    module = site / "foo.py"
    module.write_text("VALUE = 1\n")
    info = site / "foo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n")

    def entry(path: Path) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest())
        hashed = digest.rstrip(b"=").decode()
        return f"{path.relative_to(site)},sha256={hashed},{path.stat().st_size}"

    (info / "RECORD").write_text(
        "\n".join([entry(module), entry(info / "METADATA"), "foo-1.0.dist-info/RECORD,,"]) + "\n"
    )
    want = subprocess.run(
        "cat pyproject.toml constraints.txt | sha256sum | cut -c1-16",
        shell=True,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    (venv / ".mlops-env").write_text(want.stdout)
    return site


def bootstrap(
    root: Path, *, ci: bool, job: str = "41", **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "CI", "GITHUB_", "PIP_"))
    }
    # python3 must be the interpreter the venv was made with; an index that does not answer
    # makes a rebuild fail fast instead of downloading anything.
    env["PATH"] = f"{Path(sys.executable).resolve().parent}:{env['PATH']}"
    env.update(
        {
            "RUNNER_TEMP": str(root),
            "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": "",
            "PIP_RETRIES": "0",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    if ci:
        env.update({"CI": "true", "CI_JOB_ID": job})
    env.update(extra)
    return subprocess.run(
        ["bash", str(root / "scripts/bootstrap.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_untouched_cached_venv_is_used(tmp_path: Path) -> None:
    fake_checkout(tmp_path, "1.0")
    result = bootstrap(tmp_path, ci=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".venv/bin/python").exists()
    assert "rebuilding" not in result.stdout


def test_a_cached_venv_with_a_matching_stamp_but_the_wrong_version_is_rebuilt(
    tmp_path: Path,
) -> None:
    site = fake_checkout(tmp_path, "2.0")
    result = bootstrap(tmp_path, ci=True)
    assert "verify-venv: foo 1.0 is installed; constraints.txt: 2.0" in result.stderr
    assert "rebuilding it" in result.stdout
    # The tampered environment is gone; the rebuild itself fails here (no package index).
    assert not (site / "foo.py").exists()
    assert result.returncode != 0


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("file changed", "foo.py differs from its RECORD hash"),
        ("file added", "sitecustomize.py belongs to no installed distribution"),
        ("pth added", "zz.pth belongs to no installed distribution"),
        ("unpinned package", "bar 1.0 is installed; constraints.txt: not pinned"),
        ("interpreter", "bin/python is"),
    ],
)
def test_a_tampered_cached_venv_is_refused(tmp_path: Path, tamper: str, reason: str) -> None:
    """What bootstrap.sh runs in CI on a restored environment (the rebuild is shown above)."""
    site = fake_checkout(tmp_path, "1.0")
    if tamper == "file changed":
        (site / "foo.py").write_text("import os; os.system('touch pwned')\n")
    elif tamper == "file added":
        (site / "sitecustomize.py").write_text("import os\n")
    elif tamper == "pth added":
        (site / "zz.pth").write_text("import os\n")
    elif tamper == "unpinned package":
        extra = site / "bar-1.0.dist-info"
        extra.mkdir()
        (extra / "METADATA").write_text("Metadata-Version: 2.1\nName: bar\nVersion: 1.0\n")
        (extra / "RECORD").write_text("bar-1.0.dist-info/METADATA,,\n")
    elif tamper == "interpreter":
        python = tmp_path / ".venv/bin/python"
        python.unlink()
        python.symlink_to("/bin/sh")
    verify = [sys.executable, "-I", str(tmp_path / "scripts/verify-venv.py")]
    venv, constraints = str(tmp_path / ".venv"), str(tmp_path / "constraints.txt")
    clean = subprocess.run(
        [*verify, venv, constraints], capture_output=True, text=True, timeout=60, check=False
    )
    full = subprocess.run(
        [*verify, "--strict", "--files", venv, constraints],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert full.returncode == 1
    assert reason in full.stderr
    # Outside CI only versions and the interpreter are checked: a developer's own additions pass.
    assert clean.returncode == (1 if tamper == "interpreter" else 0), clean.stderr


def test_the_checkouts_own_venv_named_by_mlops_venv_is_still_rebuilt(tmp_path: Path) -> None:
    """GitLab sets MLOPS_VENV=$CI_PROJECT_DIR/.venv: that is the checkout's own, restored from
    a cache, and a tampered one is rebuilt as without MLOPS_VENV."""
    site = fake_checkout(tmp_path, "2.0")
    result = bootstrap(tmp_path, ci=True, MLOPS_VENV=str(tmp_path / ".venv"))
    assert "rebuilding it" in result.stdout
    assert not (site / "foo.py").exists()


def test_a_venv_given_by_mlops_venv_is_never_deleted(tmp_path: Path) -> None:
    """gitlab-ci-local (CI set) pointed at someone's own environment that does not match the
    pins: bootstrap stops and asks for a fresh path; it deletes nothing and installs nothing."""
    user = tmp_path / "someones-venv"
    site = fake_checkout(tmp_path / "checkout", "2.0", venv=user)
    before = sorted(str(p.relative_to(user)) for p in user.rglob("*"))
    result = bootstrap(tmp_path / "checkout", ci=True, MLOPS_VENV=str(user))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "foo 1.0 is installed; constraints.txt: 2.0" in result.stderr
    assert "not this checkout's .venv" in result.stderr
    assert "point MLOPS_VENV at a fresh path" in result.stderr
    assert "rebuilding" not in result.stdout
    assert (site / "foo.py").read_text() == "VALUE = 1\n"
    assert sorted(str(p.relative_to(user)) for p in user.rglob("*")) == before
    # A fresh path is what it asks for: there it creates the environment (which then fails
    # here only because no package index answers).
    fresh = tmp_path / "fresh-venv"
    again = bootstrap(tmp_path / "checkout", ci=True, MLOPS_VENV=str(fresh))
    assert f"creating {fresh}" in again.stdout
    assert (fresh / "pyvenv.cfg").is_file()
    assert (site / "foo.py").exists()


def test_mlops_venv_naming_a_folder_that_is_no_venv_is_refused(tmp_path: Path) -> None:
    fake_checkout(tmp_path / "checkout", "1.0")
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    for ci in (True, False):
        result = bootstrap(tmp_path / "checkout", ci=ci, MLOPS_VENV=str(folder))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "not a virtualenv" in result.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_a_venv_is_checked_file_by_file_once_not_once_per_job(tmp_path: Path) -> None:
    """Consecutive jobs sharing one environment (gitlab-ci-local with MLOPS_VENV): the first
    checks every file and drops byte code; the next ones check versions only, and keep the
    byte code. A stamp written anew (a cache restore, a rebuild) is checked again."""
    site = fake_checkout(tmp_path, "1.0")
    byte_code = site / "__pycache__"

    def compile_() -> None:
        byte_code.mkdir(exist_ok=True)
        (byte_code / "foo.cpython-311.pyc").write_bytes(b"\0")

    compile_()
    first = bootstrap(tmp_path, ci=True, job="41")
    assert first.returncode == 0, first.stderr
    assert "every file matches its RECORD" in first.stdout
    assert not byte_code.exists()
    compile_()
    second = bootstrap(tmp_path, ci=True, job="42")
    assert second.returncode == 0, second.stderr
    assert "already verified" in second.stdout
    assert "every file matches its RECORD" not in second.stdout
    assert byte_code.is_dir(), "the next job must not drop the byte code again"
    # Versions are still checked on every call: a wrong one is caught without the file check.
    (site / "foo-1.0.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: foo\nVersion: 1.1\n"
    )
    third = bootstrap(tmp_path, ci=True, job="43")
    assert "foo 1.1 is installed; constraints.txt: 1.0" in third.stderr
    assert "rebuilding it" in third.stdout


def test_a_stamp_written_anew_is_checked_file_by_file_again(tmp_path: Path) -> None:
    site = fake_checkout(tmp_path, "1.0")
    assert bootstrap(tmp_path, ci=True, job="41").returncode == 0
    stamp = tmp_path / ".venv/.mlops-env"
    # What a cache restore does: the same bytes, written again (a new change time).
    stamp.write_text(stamp.read_text())
    (site / "foo.py").write_text("import os\n")
    result = bootstrap(tmp_path, ci=True, job="42")
    assert "already verified" not in result.stdout
    assert "foo.py differs from its RECORD hash" in result.stderr
    assert "rebuilding it" in result.stdout


def test_outside_ci_a_wrong_version_is_reinstalled_not_trusted(tmp_path: Path) -> None:
    site = fake_checkout(tmp_path, "2.0")
    result = bootstrap(tmp_path, ci=False)
    assert "foo 1.0 is installed; constraints.txt: 2.0" in result.stderr
    assert "re-installing the pinned versions" in result.stdout
    assert (site / "foo.py").exists()  # a developer's own environment is repaired in place


# ---------------------------------------------------------------------------------------------
# 5. The job that posts the report comment installs only what the report imports


def report_extra() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(pyproject["project"]["optional-dependencies"]["report"])


def report_modules() -> set[str]:
    """Top-level modules of the report extra's distributions and of everything they need."""
    todo = [Requirement(r).name for r in report_extra()]
    dists: set[str] = set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in dists:
            continue
        dists.add(name)
        for line in md.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return {
        module
        for module, owners in md.packages_distributions().items()
        if any(canonicalize_name(d) in dists for d in owners)
    }


# Runs `mlops report` as if only the report extra were installed: importing any other module of
# site-packages fails as it would there (ModuleNotFoundError), and the modules that were
# imported are written to a file.
ONLY_REPORT_EXTRA = """
import importlib.abc, importlib.machinery, json, os, sys, sysconfig
allowed = set(json.loads(sys.argv[1]))
site = {os.path.realpath(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
class OnlyTheReportExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if "." in name or name in allowed:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        where = spec and (spec.origin or next(iter(spec.submodule_search_locations or []), ""))
        if where and any(os.path.realpath(where).startswith(s + os.sep) for s in site):
            raise ModuleNotFoundError(f"not in the report extra: {name}", name=name)
        return None
sys.meta_path.insert(0, OnlyTheReportExtra())
from pipelines.cli import main
try:
    code = main(sys.argv[3:])
finally:
    with open(sys.argv[2], "w") as fh:
        json.dump(sorted(sys.modules), fh)
sys.exit(code)
"""


@pytest.fixture
def github() -> Iterator[FakeApi]:
    yield from serve("github")


def report_evidence(root: Path) -> None:
    art = root / "artifacts/digits"
    # The report shows a blessing only for the model on disk (its sha256).
    (art / "train").mkdir(parents=True, exist_ok=True)
    (art / "train/model.tflite").write_bytes(b"a model")
    evidence.save(art / "validate/summary.json", util.validation_summary("d1"))
    evidence.save(
        art / "gate/blessing.json", util.blessing(hashlib.sha256(b"a model").hexdigest(), "d1")
    )


def posting_env(api: FakeApi, **extra: str) -> dict[str, str]:
    """What the `report` job of ci.yml sets, pointed at the fake GitHub."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLOPS_", "CI", "GITHUB_", "RUNNER_", "REPORT_", "PYTEST"))
    }
    env.update(
        {
            "MLOPS_SCM_PROVIDER": "github",
            "GITHUB_API_URL": api.url,
            "MLOPS_GITHUB_REPOSITORY": api.state.repo,
            "GITHUB_TOKEN": TOKEN,
            "MLOPS_PR_NUMBER": "12",
            **extra,
        }
    )
    return env


def test_the_report_job_installs_the_report_extra_only() -> None:
    job = load(ROOT / ".github/workflows/ci.yml")["jobs"]["report"]
    assert job["env"]["MLOPS_INSTALL"] == "report"
    runs = [step["run"] for step in job["steps"] if "run" in step]
    # First, whether the base commit knows the model (a shell test, no code of the change).
    assert 'if [ -d "models/$MODEL" ]' in runs[0]
    assert runs[1:] == ["make setup", "make report"]
    names = {canonicalize_name(Requirement(r).name) for r in report_extra()}
    assert names == {"pydantic", "pyyaml", "jinja2", "requests"}


def test_mlops_report_imports_only_the_report_extra(tmp_path: Path, github: FakeApi) -> None:
    """`mlops report --post` with every other third-party module missing: it renders, posts,
    and never imports TensorFlow, GX, numpy or pandas."""
    root = copy_repo(tmp_path / "repo")
    report_evidence(root)
    imported = tmp_path / "modules.json"
    summary = tmp_path / "summary.md"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            ONLY_REPORT_EXTRA,
            json.dumps(sorted(report_modules())),
            str(imported),
            "report",
            "--model",
            "digits",
            "--post",
            "--summary",
            str(summary),
        ],
        cwd=root,
        env=posting_env(github),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✅ blessed" in summary.read_text()
    (comment,) = github.state.comments.values()
    assert comment["on"] == 12
    assert "✅ blessed" in comment["body"]
    tops = {name.partition(".")[0] for name in json.loads(imported.read_text())}
    for heavy in (
        "tensorflow",
        "keras",
        "great_expectations",
        "numpy",
        "pandas",
        "pyarrow",
        "dvc",
        "ai_edge_litert",
        "docker",
        "kubernetes",
        "git",
    ):
        assert heavy not in tops, heavy


def test_the_report_install_holds_no_tensorflow_and_posts(tmp_path: Path, github: FakeApi) -> None:
    """The report job's two commands, for real: `MLOPS_INSTALL=report make setup` builds an
    environment (from the package index pip is configured with) holding the report extra
    only, and `make report` posts the comment with it."""
    root = copy_repo(tmp_path / "repo")
    report_evidence(root)
    env = posting_env(github, MLOPS_INSTALL="report", CI="true", RUNNER_TEMP=str(tmp_path))
    env["PATH"] = f"{Path(sys.executable).resolve().parent}:{env['PATH']}"
    setup = subprocess.run(
        ["make", "--no-print-directory", "setup"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if setup.returncode != 0 and "No matching distribution" in setup.stderr:
        require("a package index", False, setup.stderr[-300:])
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "(report)" in setup.stdout
    site = next((root / ".venv/lib").glob("python3*/site-packages"))
    installed = {canonicalize_name(d.metadata["Name"]) for d in md.distributions(path=[str(site)])}
    assert {"pydantic", "pyyaml", "jinja2", "requests"} <= installed
    for heavy in (
        "tensorflow-cpu",
        "tensorflow",
        "keras",
        "great-expectations",
        "numpy",
        "pandas",
        "dvc",
        "mlops-gitops",
    ):
        assert heavy not in installed, heavy
    report = subprocess.run(
        ["make", "--no-print-directory", "report"],
        cwd=root,
        env={**env, "REPORT_POST": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    assert "already verified" in report.stdout  # setup's check is not repeated
    (comment,) = github.state.comments.values()
    assert comment["on"] == 12
    assert "✅ blessed" in comment["body"]


# ---------------------------------------------------------------------------------------------
# 6. zizmor, auditor persona


def test_zizmor_auditor_finds_nothing_at_medium_or_above() -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "zizmor"),
            "--offline",
            "--persona",
            "auditor",
            "--min-severity",
            "medium",
            "--no-progress",
            str(ROOT / ".github/workflows"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    makefile = (ROOT / "Makefile").read_text()
    assert 'zizmor" --offline --persona auditor --min-severity medium' in makefile


def test_the_cluster_jobs_are_manual_default_branch_jobs_holding_only_the_kubeconfig() -> None:
    workflow = load(ROOT / ".github/workflows/train-cluster.yml")
    assert triggers(workflow) == {"workflow_dispatch"}
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["job"]["options"] == ["train", "tune"]
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["environment"] == TRAINING_ENVIRONMENT
    assert job["permissions"] == {"contents": "read"}
    assert secrets_in(job) == CLUSTER_SECRETS
    assert job["env"] == {"MODEL": "${{ inputs.model }}", "CLUSTER_JOB": "${{ inputs.job }}"}
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs[0] == "make check-inputs", "the inputs are checked before anything"
    assert "make cluster-job" in runs
    assert runs.index("make manifests") < runs.index("make cluster-job")
    for other in WORKFLOWS:
        if other.name != "train-cluster.yml":
            assert not secrets_in(load(other)) & CLUSTER_SECRETS, other.name
    gitlab = gitlab_jobs()["train-cluster"]
    assert gitlab["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "when": "manual"}]
    assert gitlab["environment"]["name"] == TRAINING_ENVIRONMENT
    assert gitlab["script"] == ["make manifests", "make cluster-job"]
    assert not runs_for_merge_requests(gitlab)


def test_a_hostile_cluster_job_is_refused() -> None:
    for value in ("deploy", "train ", "train;ls", "", "Train"):
        result = check_inputs(CLUSTER_JOB=value)
        assert result.returncode == 2, value
        assert "CLUSTER_JOB=" in result.stderr
    assert check_inputs(CLUSTER_JOB="tune").returncode == 0
