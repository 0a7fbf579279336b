"""The Jenkinsfile and the Cloud Build files, checked on the real files (README, "CI: Jenkins
and Cloud Build"):

- the Jenkinsfile parses with Groovy's compiler (Debian's groovy; no Jenkins server runs here),
  and its structure, read from Groovy's syntax tree, keeps the security model: change requests
  run test ... gate and the report with no credential; credentials are bound only in
  primary-branch stages that write; every `sh` is a literal make call whose targets exist;
  stage names are GitLab's job names; the rollback choices are the environments that exist;
  the per-model stages run in a matrix over MODEL whose values are models/'s folders, as
  GitLab's `.per_model`;
- cloudbuild.yaml runs the same stages as make targets that exist, without a shell, with
  secrets from Secret Manager only in the steps that write; cloudbuild-pr.yaml, the pull
  requests' file, is its steps up to the report and holds no secret.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, require

JENKINSFILE = ROOT / "Jenkinsfile"
PARSER = ROOT / "scripts/ci-tools/jenkinsfile.groovy"
CLOUDBUILD = ROOT / "cloudbuild.yaml"
CLOUDBUILD_PR = ROOT / "cloudbuild-pr.yaml"
ENVIRONMENTS = sorted(p.stem for p in (ROOT / "manifests/environments").glob("*.yaml"))
MODELS = sorted(p.name for p in (ROOT / "models").iterdir() if p.is_dir())
# The stages a change request runs; the rest need the primary branch.
CHANGE_REQUEST_STAGES = ["test", "validate", "train", "gate"]
WRITE_STAGES = {"release", "promote", *(f"rollback-{env}" for env in ENVIRONMENTS)}
REGISTRY_STAGES = {"package", "verify", "release", "promote"}


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.MULTILINE))


# GitLab jobs Jenkins and Cloud Build do not have (yet): the baseline export for merge
# requests' gates, and the scheduled monitor and retrain. Their change requests read no
# credential at all, so they have no use for the export (README, "CI: Jenkins and Cloud Build").
# And the manual train-cluster job (the cluster path), which `make cluster-job` runs anywhere.
GITLAB_ONLY = {"baseline", "monitor", "retrain", "train-cluster"}


def gitlab_jobs() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    reserved = {"workflow", "variables", "stages", "default", "include"}
    return {
        name: job
        for name, job in data.items()
        if name not in reserved and not name.startswith(".") and name not in GITLAB_ONLY
    }


def gitlab_job_names() -> list[str]:
    return list(gitlab_jobs())


def groovy(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("groovy")
    require("groovy", exe is not None, "run `make ci-tools` (Debian's groovy package)")
    assert exe is not None
    return subprocess.run(
        [exe, str(PARSER), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree() -> list[Any]:
    result = groovy(str(JENKINSFILE))
    assert result.returncode == 0, result.stderr
    parsed: list[Any] = json.loads(result.stdout)
    return parsed


def calls(nodes: list[Any], name: str) -> Iterator[dict[str, Any]]:
    """Every call named `name` in `nodes`, at any depth (closure bodies and arguments)."""
    for node in nodes:
        if isinstance(node, list):  # withCredentials([usernamePassword(...)])
            yield from calls(node, name)
        elif isinstance(node, dict):
            if node.get("call") == name:
                yield node
            yield from calls(node.get("body", []), name)
            yield from calls(node.get("args", []), name)
            for value in node.values():
                if isinstance(value, dict):
                    yield from calls([value], name)


def only(nodes: list[Any], name: str) -> dict[str, Any]:
    (found,) = [n for n in nodes if isinstance(n, dict) and n.get("call") == name]
    return found


def top_stages(tree: list[Any]) -> list[dict[str, Any]]:
    pipeline = only(tree, "pipeline")
    found: list[dict[str, Any]] = only(pipeline["body"], "stages")["body"]
    assert all(stage["call"] == "stage" for stage in found), found
    return found


def matrix(tree: list[Any]) -> dict[str, Any]:
    """The one matrix: the per-model stages."""
    found: list[dict[str, Any]] = [
        m for s in top_stages(tree) for m in s["body"] if m.get("call") == "matrix"
    ]
    (one,) = found
    return one


def stages(tree: list[Any]) -> dict[str, dict[str, Any]]:
    """Every stage that runs steps, by name, in order: the matrix's stages where it stands."""
    result = {}
    for stage in top_stages(tree):
        inner = [m for m in stage["body"] if m.get("call") == "matrix"]
        for s in only(inner[0]["body"], "stages")["body"] if inner else [stage]:
            (name,) = s["args"]
            result[name] = s
    return result


def shell_lines(node: dict[str, Any]) -> list[Any]:
    return [sh["args"][0] for sh in calls([node], "sh")]


def condition(stage: dict[str, Any]) -> str:
    """The stage's `when` as compact text: its calls and expressions, in order."""

    def flat(nodes: list[Any]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, dict) and "call" in node:
                yield node["call"]
                for arg in node["args"]:
                    # Named arguments (environment name: 'X', value: 'Y') as their values.
                    yield from (map(str, arg.values()) if isinstance(arg, dict) else [str(arg)])
                yield from flat(node["body"])
            elif isinstance(node, dict) and "expr" in node:
                yield node["expr"]

    return " ".join(flat([only(stage["body"], "when")]))


def bound_credentials(node: dict[str, Any]) -> set[str]:
    ids = {c["args"][0] for c in calls([node], "credentials")}
    for binding in calls([node], "usernamePassword"):
        ids.add(binding["args"][0]["credentialsId"])
    for binding in calls([node], "string"):
        if "credentialsId" in binding["args"][0]:
            ids.add(binding["args"][0]["credentialsId"])
    return ids


# ---------------------------------------------------------------------------------------------
# Jenkinsfile


def test_the_jenkinsfile_parses_and_a_broken_one_does_not(tmp_path: Path) -> None:
    good = groovy(str(JENKINSFILE), "--check")
    assert good.returncode == 0, good.stderr
    assert "parses" in good.stdout
    broken = tmp_path / "Jenkinsfile"
    text = JENKINSFILE.read_text()
    # Drop the closing brace of the pipeline block: Groovy must say where it stopped.
    broken.write_text(text[: text.rstrip().rindex("}")])
    bad = groovy(str(broken), "--check")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "does not parse" in bad.stderr
    assert re.search(r"line \d+", bad.stderr), bad.stderr
    assert groovy(str(tmp_path / "missing")).returncode == 2


def test_stage_names_are_gitlabs_job_names(tree: list[Any]) -> None:
    assert list(stages(tree)) == gitlab_job_names()


def test_every_model_runs_the_per_model_stages_as_gitlab_does(tree: list[Any]) -> None:
    """One cell per model folder (GitLab's `.per_model` list; `mlops init` adds a new model to
    both), running exactly the stages GitLab runs per model, each cell's stashes its own."""
    cells = matrix(tree)
    (axis,) = only(cells["body"], "axes")["body"]
    assert only(axis["body"], "name")["args"] == ["MODEL"]
    assert only(axis["body"], "values")["args"] == MODELS, (
        f"the Jenkinsfile's MODEL axis must list exactly the model folders {MODELS}"
    )
    per_model = [
        name for name, job in gitlab_jobs().items() if ".per_model" in (job.get("extends") or [])
    ]
    inner = only(cells["body"], "stages")["body"]
    assert [s["args"][0] for s in inner] == per_model
    # The cells share the build's stashes: a stage hands the next stage of its own model only.
    for stage in inner:
        for step in [*calls([stage], "stash"), *calls([stage], "unstash")]:
            # stash name: ..., ... or unstash ...
            name = step["args"][0].get("name", step["args"][0])
            # Groovy's text of "gate-${env.MODEL}".
            assert re.fullmatch(r"[a-z]+-\$env\.MODEL", name.get("gstring", "")), step
    # The matrix itself binds nothing: credentials stay in the stages that write.
    outside = [n for n in cells["body"] if n.get("call") != "stages"]
    assert not bound_credentials({"body": outside})


def test_a_person_can_run_one_model_and_a_mistyped_one_fails(tree: list[Any]) -> None:
    """Builds run every model; "Build with Parameters" with ALL_MODELS unticked runs MODEL's
    cell only. MODEL is checked first, so a typo fails the build rather than match no cell."""
    pipeline = only(tree, "pipeline")
    params = {c["call"]: c["args"][0] for c in only(pipeline["body"], "parameters")["body"]}
    assert params["booleanParam"] == {
        "name": "ALL_MODELS",
        "defaultValue": True,
        "description": params["booleanParam"]["description"],
    }
    assert params["string"]["name"] == "MODEL"
    assert params["string"]["defaultValue"] in MODELS
    assert condition(matrix(tree)) == (
        "when anyOf expression (params.ALL_MODELS != false) expression (params.MODEL == env.MODEL)"
    )
    assert shell_lines(top_stages(tree)[0]) == ["make check-inputs", "make test"]


def test_every_shell_line_is_a_literal_make_call_of_existing_targets(tree: list[Any]) -> None:
    targets = make_targets()
    seen = 0
    for name, stage in stages(tree).items():
        for line in shell_lines(stage):
            # A GString would let Groovy paste a value into the shell line.
            assert isinstance(line, str), f"{name}: {line!r} is not a single-quoted string"
            match = re.fullmatch(r"((?:[A-Z_]+=[a-z]+ )*)make((?: [a-z-]+)+)", line)
            assert match, f"{name}: {line!r} is not `[VAR=literal ...] make TARGET...`"
            called = match.group(2).split()
            assert set(called) <= targets, f"{name}: {set(called) - targets}"
            seen += 1
    assert seen >= len(stages(tree))


def test_pipeline_runs_until_the_stage_it_is_named_after(tree: list[Any]) -> None:
    until = {
        "validate": "validate",
        "train": "evaluate",
        "gate": "gate",
        "package": "package",
        "verify": "verify",
        "release": "release",
        "promote": "promote",
    }
    for name, stage in stages(tree).items():
        lines = [line for line in shell_lines(stage) if "make pipeline" in line]
        if name in until:
            assert lines == [f"UNTIL={until[name]} make pipeline"], name
        else:
            assert not lines, name


def test_change_requests_run_to_the_gate_and_hold_no_credential(tree: list[Any]) -> None:
    all_stages = stages(tree)
    for name, stage in all_stages.items():
        when = condition(stage)
        if name in CHANGE_REQUEST_STAGES:
            assert "anyOf changeRequest environment" in when, (name, when)
            assert not bound_credentials(stage), f"{name} runs change requests' code"
        else:
            # Everything else runs on the primary branch only, never for a change request.
            assert "not changeRequest" in when, (name, when)
            assert "BRANCH_IS_PRIMARY true" in when, (name, when)
    # The report is the gate's, whatever its verdict, and posts nowhere.
    gate = all_stages["gate"]
    post = only(gate["body"], "post")
    assert shell_lines(post) == ["make report"]
    assert "REPORT_POST" not in json.dumps(tree)


def test_credentials_only_where_a_primary_branch_stage_writes(tree: list[Any]) -> None:
    pipeline = only(tree, "pipeline")
    outside = [n for n in pipeline["body"] if n.get("call") != "stages"]
    assert not bound_credentials({"body": outside}), "no credential at the pipeline level"
    for name, stage in stages(tree).items():
        ids = bound_credentials(stage)
        expected = set()
        if name in REGISTRY_STAGES:
            expected.add("mlops-registry")
        if name in WRITE_STAGES:
            expected |= {"mlops-gitops-token", "mlops-scm-token"}
        assert ids == expected, name
        # credentials() only as an environment {} binding, never elsewhere.
        for environment in calls([stage], "environment"):
            for entry in environment["body"]:
                if "assign" in entry and isinstance(entry["value"], dict):
                    assert entry["value"].get("call") in ("credentials", None), entry
        in_environment = {
            c["args"][0]
            for environment in calls([stage], "environment")
            for c in calls(environment["body"], "credentials")
        }
        assert in_environment == {c["args"][0] for c in calls([stage], "credentials")}, name


def test_rollback_choices_are_the_environments_and_each_names_its_own(tree: list[Any]) -> None:
    pipeline = only(tree, "pipeline")
    (choice,) = [
        c["args"][0]
        for c in calls(pipeline["body"], "choice")
        if c["args"][0]["name"] == "ROLLBACK"
    ]
    assert choice["choices"][0] == "none", "an unparameterised build must not roll back"
    assert sorted(choice["choices"][1:]) == ENVIRONMENTS
    rollbacks = {n: s for n, s in stages(tree).items() if n.startswith("rollback-")}
    assert sorted(rollbacks) == [f"rollback-{env}" for env in ENVIRONMENTS]
    for name, stage in rollbacks.items():
        env = name.removeprefix("rollback-")
        # The parameter picks the stage; the environment is written out in it.
        assert f"params.ROLLBACK == {env}" in condition(stage), name
        assert shell_lines(stage) == [f"ENV={env} make rollback"], name
    for name, stage in stages(tree).items():
        if not name.startswith("rollback-"):
            assert "ROLLBACK) ? params.ROLLBACK : none == none" in condition(stage), name
    # Production's rollback waits for an approver, decided before the input is asked.
    production = rollbacks["rollback-production"]
    assert only(production["body"], "input")
    assert "beforeInput True" in condition(production)


def test_pods_are_valid_mount_no_token_and_reach_docker_over_a_socket_only(
    tree: list[Any],
) -> None:
    import kubernetes_validate

    used = {
        name: {c["args"][0] for c in calls([stage], "yamlFile")}
        for name, stage in stages(tree).items()
    }
    python, docker = "scripts/jenkins/pod-python.yaml", "scripts/jenkins/pod-docker.yaml"
    for name, files in used.items():
        # The Docker engine (a privileged sidecar) only where the primary branch packages.
        assert files == ({docker} if name in REGISTRY_STAGES else {python}), name
    pods = {path: yaml.safe_load((ROOT / path).read_text()) for path in (python, docker)}
    for path, pod in pods.items():
        kubernetes_validate.validate(pod, "1.33", strict=True)  # gitops.yaml's default
        assert pod["spec"]["automountServiceAccountToken"] is False, path
    containers = pods[python]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["python"]
    assert not any(c.get("securityContext") for c in containers)
    dind = next(c for c in pods[docker]["spec"]["containers"] if c["name"] == "dind")
    assert dind["args"] == ["--host=unix:///var/run/docker.sock"], "no TCP listener"


# ---------------------------------------------------------------------------------------------
# Cloud Build


def cloudbuild(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


@pytest.mark.parametrize("path", [CLOUDBUILD, CLOUDBUILD_PR], ids=lambda p: p.name)
def test_cloudbuild_steps_are_make_targets_without_a_shell(path: Path) -> None:
    targets = make_targets()
    for step in cloudbuild(path)["steps"]:
        assert step["entrypoint"] == "make", step["id"]
        assert set(step["args"]) <= targets, step["id"]
        assert not any("$" in arg for arg in step["args"]), step["id"]
        for entry in step.get("env", []):
            name, _, value = entry.partition("=")
            assert re.fullmatch(r"[A-Z_]+", name), entry
            # A substitution only ever becomes an environment value.
            assert "$" not in value or re.fullmatch(r"\$\{_[A-Z_]+\}", value), entry


def test_cloudbuild_runs_the_same_stages_as_gitlab() -> None:
    ids = [step["id"] for step in cloudbuild(CLOUDBUILD)["steps"]]
    gitlab = [name for name in gitlab_job_names() if not name.startswith("rollback-")]
    assert ids == ["check-inputs", *gitlab[:4], "report", *gitlab[4:]]
    until = {
        step["id"]: next((e for e in step.get("env", []) if e.startswith("UNTIL=")), None)
        for step in cloudbuild(CLOUDBUILD)["steps"]
    }
    assert until["train"] == "UNTIL=evaluate"
    for stage in ("validate", "gate", "package", "verify", "release", "promote"):
        assert until[stage] == f"UNTIL={stage}"


def test_cloudbuild_secrets_come_from_secret_manager_where_they_are_needed() -> None:
    data = cloudbuild(CLOUDBUILD)
    available = {s["env"]: s["versionName"] for s in data["availableSecrets"]["secretManager"]}
    for env, version in available.items():
        assert re.fullmatch(
            r"projects/\$\{PROJECT_ID\}/secrets/mlops-[a-z-]+/versions/latest", version
        ), env
    expected = {
        "package": {"REGISTRY_PASSWORD"},
        "release": {"MLOPS_GITOPS_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN"},
        "promote": {"MLOPS_GITOPS_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN"},
    }
    used = {s["id"]: set(s["secretEnv"]) for s in data["steps"] if "secretEnv" in s}
    assert used == expected
    assert set().union(*used.values()) == set(available)
    # No secret is written in the file: substitutions hold names and addresses only.
    for key in data["substitutions"]:
        assert not re.search(r"TOKEN|PASSWORD|SECRET", key), key
    # The registry and the GitOps remote must be set by the trigger: no default.
    assert "_REGISTRY" not in data["substitutions"]
    assert "_GITOPS_REMOTE" not in data["substitutions"]
    assert data["options"]["substitutionOption"] == "MUST_MATCH"
    env = data["options"]["env"]
    assert "REGISTRY=${_REGISTRY}" in env
    assert "MLOPS_GITOPS_REMOTE=${_GITOPS_REMOTE}" in env


def test_the_pull_request_file_is_the_first_steps_and_holds_no_secret() -> None:
    full = cloudbuild(CLOUDBUILD)["steps"]
    pr = cloudbuild(CLOUDBUILD_PR)
    assert pr["steps"] == full[: len(pr["steps"])]
    assert [s["id"] for s in pr["steps"]] == ["check-inputs", *CHANGE_REQUEST_STAGES, "report"]
    assert "availableSecrets" not in pr
    assert "secrets" not in pr
    assert not any("secretEnv" in step for step in pr["steps"])
    text = CLOUDBUILD_PR.read_text()
    assert "registry-login" not in text


def test_the_readme_gives_a_models_triggers_as_init_prints_them() -> None:
    """Cloud Build runs one model per build: one pair of triggers per model, `_MODEL` set."""
    from pipelines.core.scaffold import cloudbuild_triggers

    readme = (ROOT / "README.md").read_text()
    for command in cloudbuild_triggers("digits"):
        assert command in readme
    for path in (CLOUDBUILD, CLOUDBUILD_PR):
        assert "MODEL=${_MODEL}" in cloudbuild(path)["options"]["env"]


def test_check_inputs_refuses_a_bad_substitution() -> None:
    """Cloud Build hands _REGISTRY and _GITOPS_BRANCH to make as REGISTRY and
    MLOPS_GITOPS_BRANCH; make's check-inputs refuses what is not a registry or a branch."""

    def check(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts/check-inputs.sh")],
            env={"PATH": "/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    for good in ("ghcr.io/acme", "europe-docker.pkg.dev/proj/repo", "127.0.0.1:5000", ""):
        assert check(REGISTRY=good).returncode == 0, good
    for bad in ("ghcr.io/acme ", "x;id", "$(id)", "Ghcr.io", "ghcr.io//a", "-h", "a/../b"):
        result = check(REGISTRY=bad)
        assert result.returncode == 2, bad
        assert "check-inputs: REGISTRY=" in result.stderr
    for good in ("main", "release/v1", ""):
        assert check(MLOPS_GITOPS_BRANCH=good).returncode == 0, good
    for bad in ("-f", "a..b", "main.lock", "a b", "x/", "$(id)", "main\n"):
        result = check(MLOPS_GITOPS_BRANCH=bad)
        assert result.returncode == 2, bad
        assert "check-inputs: MLOPS_GITOPS_BRANCH=" in result.stderr


def test_make_ci_lint_checks_both_files() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--builtin-schema vendor.cloudbuild cloudbuild.yaml cloudbuild-pr.yaml" in makefile
    assert "jenkinsfile.groovy Jenkinsfile --check" in makefile
    assert "infra.sh apt groovy" in (ROOT / "scripts/ci-tools.sh").read_text()
