"""`.gitlab-ci.yml`, executed: the merge-request pipeline run locally by gitlab-ci-local in its
shell executor, validate -> train -> gate, posting the report note to a local GitLab API.
Once on good data (blessed), once on corrupted data (stops at validation)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FAST_TRAINING, ROOT, copy_repo, edit_model_yaml, require
from tests.fakes.scm_api import TOKEN, FakeApi, serve

GCL = ROOT / "scripts/ci-tools/node_modules/.bin/gitlab-ci-local"
VENV = Path(sys.executable).parent.parent

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def gitlab() -> Iterator[FakeApi]:
    yield from serve("gitlab")


def run_pipeline(repo: Path, api: FakeApi) -> subprocess.CompletedProcess[str]:
    require(
        "gitlab-ci-local",
        GCL.is_file() and shutil.which("rsync") is not None,
        "run `make ci-tools` (npm) and install rsync",
    )
    variables = {
        # What GitLab sets for a merge-request pipeline (no branch pipeline variables).
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_COMMIT_BRANCH": "",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_API_V4_URL": api.url,
        "CI_PROJECT_ID": api.state.project,
        "CI_MERGE_REQUEST_PROJECT_ID": api.state.project,
        "CI_DEFAULT_BRANCH": "main",
        # The job's own token: the gate fetches the default branch's baseline bundle with it.
        "CI_JOB_TOKEN": TOKEN,
        # The Reporter-role token the gate job hands to `make report` as GITLAB_TOKEN.
        "MLOPS_REPORT_TOKEN": TOKEN,
        # One prepared environment for every job, instead of 1.5 GB installed per job.
        "MLOPS_VENV": str(VENV),
        "CI": "true",
    }
    # No --shell-isolation: with it, gitlab-ci-local runs after_script in a fresh copy of the
    # job folder, unlike GitLab, and the report would not see the gate's verdict.
    args = [str(GCL), "--force-shell-executor", "--needs", "gate", "--no-color"]
    for key, value in variables.items():
        args += ["--variable", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "MLOPS_"))}
    return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=1200)


def state(repo: Path, kind: str, job: str, model: str = "digits", suffix: str = "") -> Path:
    """gitlab-ci-local's file or folder for the per-model job `<job>: [<model>]` (one job per
    model, `parallel: matrix`), under the name it makes safe for a path: each run of
    characters other than letters, digits, _ and - becomes its unpadded base64url
    (safeDockerString), so `gate: [digits]` is `gateOiBbdigitsXQ`."""

    def encode(m: re.Match[str]) -> str:
        return base64.urlsafe_b64encode(m.group(0).encode()).decode().rstrip("=")

    return (
        repo
        / ".gitlab-ci-local"
        / kind
        / (re.sub(r"[^\w-]+", encode, f"{job}: [{model}]") + suffix)
    )


def exported(repo: Path, job: str, model: str = "digits") -> Path:
    """What the model's job declared as artifacts, as gitlab-ci-local exported them."""
    return state(repo, "artifacts", job, model)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_repo(tmp_path / "repo")
    edit_model_yaml(root, FAST_TRAINING)
    subprocess.run(["git", "commit", "-qam", "fast training for the test"], cwd=root, check=True)
    return root


def test_merge_request_pipeline_blesses_and_posts_the_report(repo: Path, gitlab: FakeApi) -> None:
    result = run_pipeline(repo, gitlab)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for job in ("validate", "train", "gate"):
        for model in ("diabetes", "digits"):
            assert f"{job}: [{model}]" in result.stdout  # one job per model
    assert "package" not in [line.split()[0] for line in result.stdout.splitlines() if line]
    gate = exported(repo, "gate")
    blessing = json.loads((gate / "artifacts/digits/gate/blessing.json").read_text())
    assert blessing["blessed"] is True
    # No `baseline` job has run on the default branch: no bundle, so no baseline, and it says so.
    fetches = [r for r in gitlab.state.requests if "/jobs/artifacts/" in r.path]
    assert fetches, "the gate did not ask for the default branch's bundle"
    assert sorted(f.query["job"] for f in fetches[:2]) == [
        "baseline: [diabetes]",
        "baseline: [digits]",
    ]
    assert all(f.headers["job-token"] == TOKEN for f in fetches)
    assert blessing["baseline"] is None
    (change,) = [r for r in blessing["rules"] if r["rule"].startswith("change_")]
    assert "no baseline bundle in baseline-bundle" in change["reason"]
    assert (exported(repo, "validate") / "artifacts/digits/validate/data_docs/index.html").is_file()
    assert (exported(repo, "train") / "artifacts/digits/train/model.tflite").is_file()
    assert (gate / "dvc.lock").is_file()  # the stage cache travels with the artifacts
    metrics = (gate / "reports/digits/metrics.txt").read_text()
    assert "accuracy 0.9" in metrics
    assert "blessed 1" in metrics
    assert "✅ blessed" in (gate / "reports/digits/report.md").read_text()
    # Each model's gate job exports its own files: the jobs share one checkout here, so whichever
    # ran second may also carry the other's, but only its own are certain to be there.
    regressor_gate = exported(repo, "gate", "diabetes")
    regressor = json.loads((regressor_gate / "artifacts/diabetes/gate/blessing.json").read_text())
    assert regressor["blessed"] is True
    assert "mae " in (regressor_gate / "reports/diabetes/metrics.txt").read_text()
    notes = sorted((c["body"] for c in gitlab.state.comments.values() if c["on"] == 7), key=len)
    assert len(notes) == 2  # one note per model the change touches
    by_model = {n.split(" -->")[0].removeprefix("<!-- mlops-report:"): n for n in notes}
    assert set(by_model) == {"diabetes", "digits"}
    assert "✅ blessed" in by_model["digits"]
    assert "/-/jobs/" in by_model["digits"]  # links into the job's artifacts
    assert "| r2 " in by_model["diabetes"]  # a regressor's note shows its own metrics
    # That a later pipeline updates these notes in place rather than adding more is
    # test_scm_providers' (the same marker, the same API): a second pipeline here cost ~30 s.


def test_corrupted_data_stops_the_pipeline_at_validation(repo: Path, gitlab: FakeApi) -> None:
    frames = [
        pd.read_parquet(ROOT / f"data/digits/{s}.parquet")
        if (ROOT / f"data/digits/{s}.parquet").is_file()
        else None
        for s in ("train", "validation", "test")
    ]
    if any(f is None for f in frames):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        table = pd.DataFrame(bunch.data, columns=[f"pixel_{i}" for i in range(64)])
        table["label"] = bunch.target
    else:
        table = pd.concat(frames).drop(columns=["row_id"])
    table.loc[table.index[:40], "pixel_10"] = 99.0  # out of range
    table.to_csv(repo / "corrupted.csv", index=False)
    edit_model_yaml(repo, {"data.source": {"kind": "file", "path": "corrupted.csv"}})
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "corrupt the data"], cwd=repo, check=True)
    result = run_pipeline(repo, gitlab)
    assert result.returncode != 0, result.stdout[-3000:]
    assert (exported(repo, "validate") / "artifacts/digits/validate/summary.json").is_file(), (
        result.stdout[-4000:] + result.stderr[-2000:]
    )
    summary = json.loads(
        (exported(repo, "validate") / "artifacts/digits/validate/summary.json").read_text()
    )
    assert summary["success"] is False
    assert any("pixel_10" in f for f in summary["failures"])
    assert not exported(repo, "train").exists()
    assert not exported(repo, "gate").exists()
    assert not (repo / "artifacts/digits/train").exists()
    log = state(repo, "output", "validate", suffix=".log").read_text()
    assert "pixel_10: expect_column_values_to_be_between" in log
