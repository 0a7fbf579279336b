"""The baseline bundle (`mlops baseline export` on the default branch, `mlops gate --baseline
DIR` in a pull request): a pull request's gate compares against production's model without
holding any credential, and refuses a bundle it cannot trust.

Real git (the embedded GitOps repository), a real registry and real TFLite files; only GitLab's
web API is the fake one (tests/fakes/scm_api.py).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import evidence
from pipelines.adapters import gitops
from pipelines.adapters.artifacts import TFLITE, sha256_file
from pipelines.adapters.registry import Registry
from pipelines.cli import main
from pipelines.config import ReleaseRecord, load_gitops
from pipelines.config.schema import ModelSlot
from pipelines.evidence import BaselineBundle, BaselineRelease
from tests.conftest import edit_model_yaml
from tests.fakes.scm_api import TOKEN, FakeApi, serve

BUNDLE = "baseline-bundle"
BLESSING = "artifacts/digits/gate/blessing.json"


def _candidate(workspace: Path) -> Path:
    return workspace / "artifacts/digits/train" / TFLITE


def _bundle(workspace: Path, changes: dict[str, object] | None = None) -> Path:
    """A bundle made by hand: the candidate's own model file as production's, and its record."""
    folder = workspace / BUNDLE
    folder.mkdir()
    record = BaselineBundle(
        model="digits",
        environment="production",
        gitops_commit="a" * 40,
        exported="2026-12-01T00:00:00+00:00",
        mlops_version="0.1.0",
        release=BaselineRelease(
            release_id="r-1",
            model_artifact=f"127.0.0.1:5000/x/digits-model@sha256:{'1' * 64}",
            model_sha256=sha256_file(_candidate(workspace)),
            image=f"127.0.0.1:5000/x/digits@sha256:{'2' * 64}",
        ),
    )
    shutil.copy(_candidate(workspace), folder / TFLITE)
    raw = record.model_dump(mode="json") | (changes or {})
    (folder / BaselineBundle.FILE).write_text(json.dumps(raw))
    return folder


def _gate(workspace: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(workspace)
    return main(["gate", *args])


def test_export_then_gate_compares_against_production_with_no_credential(
    infra: str,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Production's release (a model artifact pushed by digest, its state committed to the
    embedded GitOps repository) is exported, then the gate reads only the folder."""
    data = _candidate(workspace).read_bytes()
    registry = Registry()
    repo = f"mlops-test/baseline-{sha256_file(_candidate(workspace))[:12]}-model"
    digest = registry.push_model(repo, "r-1", {"model.tflite": (data, "application/x-tflite")}, {})
    artifact = f"{registry.host}/{repo}@{digest}"
    record = ReleaseRecord(
        release_id="r-1",
        image=f"{registry.host}/mlops-test/digits@sha256:{'2' * 64}",
        model_sha256=sha256_file(_candidate(workspace)),
        model_artifact=artifact,
        data_md5="0" * 32,
        source_commit="0" * 40,
        released_at="2026-12-01T00:00:00Z",
    )
    cfg = load_gitops(workspace)
    with gitops.checkout(cfg, workspace) as repo_:
        state = repo_.read_state("production")
        slot = ModelSlot(active="blue", blue=record)
        repo_.write_state(state.model_copy(update={"models": {"digits": slot}}))
        commit = repo_.commit("production: r-1 (test)")
        assert commit is not None
        repo_.push(cfg.branch)

    monkeypatch.chdir(workspace)
    assert main(["baseline", "export", "--out", BUNDLE]) == 0
    assert "production release r-1" in capsys.readouterr().out
    bundle = evidence.load(workspace / BUNDLE / BaselineBundle.FILE, BaselineBundle)
    assert bundle.gitops_commit == commit
    assert bundle.release is not None
    assert bundle.release.model_artifact == artifact
    assert (workspace / BUNDLE / TFLITE).read_bytes() == data

    # The gate itself: no registry, no GitOps repository, no token needed.
    monkeypatch.setenv("MLOPS_GITOPS_REMOTE", "no-such-gitops.git")
    monkeypatch.setenv("REGISTRY", "127.0.0.1:9")
    assert main(["gate", "--baseline", BUNDLE]) == 0
    baseline = json.loads((workspace / BLESSING).read_text())["baseline"]
    assert baseline["release_id"] == "r-1"
    assert baseline["gitops_commit"] == commit
    assert baseline["model_artifact"] == artifact
    assert baseline["image"] == record.image
    assert baseline["exported"] == bundle.exported
    assert baseline["model_sha256"] == record.model_sha256
    assert "source" not in baseline


def test_export_without_a_release_writes_a_record_the_gate_reads_as_no_baseline(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workspace)
    assert main(["baseline", "export", "--out", BUNDLE]) == 0
    assert "production has no release yet" in capsys.readouterr().out
    assert sorted(p.name for p in (workspace / BUNDLE).iterdir()) == [BaselineBundle.FILE]
    assert main(["gate", "--baseline", BUNDLE]) == 0
    out = capsys.readouterr().out
    assert "no baseline model (production had no release at GitOps commit" in out, out


def test_make_baseline_exports_to_mlops_baseline(workspace: Path) -> None:
    """The target CI calls: MODEL and MLOPS_BASELINE reach mlops through the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MAKEFLAGS"))}
    env |= {"MLOPS_VENV": str(Path(sys.executable).parent.parent), "MLOPS_BASELINE": BUNDLE}
    result = subprocess.run(
        ["make", "--no-print-directory", "baseline"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "production has no release yet" in result.stdout
    record = evidence.load(workspace / BUNDLE / BaselineBundle.FILE, BaselineBundle)
    assert (record.model, record.release) == ("digits", None)


def test_export_refuses_a_folder_outside_the_repository(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workspace)
    assert main(["baseline", "export", "--out", "../elsewhere"]) == 2
    assert "is not a folder inside the repository" in capsys.readouterr().err
    assert not (workspace.parent / "elsewhere").exists()
    monkeypatch.delenv("MLOPS_BASELINE", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["baseline", "export"])
    assert exc.value.code == 2  # argparse: --out is required without MLOPS_BASELINE


def test_a_bundle_is_compared_and_recorded(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bundle(workspace)
    monkeypatch.setenv("MLOPS_BASELINE", BUNDLE)  # the default of --baseline, as CI sets it
    assert _gate(workspace, monkeypatch) == 0
    blessing = json.loads((workspace / BLESSING).read_text())
    assert blessing["comparison"]["delta"] == 0.0
    assert blessing["baseline"]["release_id"] == "r-1"
    assert blessing["baseline"]["gitops_commit"] == "a" * 40


def test_a_tampered_model_file_is_refused(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _bundle(workspace)
    with (folder / TFLITE).open("ab") as fh:
        fh.write(b"\0")
    assert _gate(workspace, monkeypatch, "--baseline", BUNDLE) == 2
    err = capsys.readouterr().err
    assert "does not have the sha256" in err, err
    assert "altered or corrupted" in err, err
    assert not (workspace / BLESSING).exists()


def test_a_bundle_without_its_model_file_is_refused(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (_bundle(workspace) / TFLITE).unlink()
    assert _gate(workspace, monkeypatch, "--baseline", BUNDLE) == 2
    assert f"but not its model file {TFLITE}" in capsys.readouterr().err
    assert not (workspace / BLESSING).exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 2}, "of schema version 2, this mlops reads version 1"),
        ({"surprise": 1}, "surprise: unknown field"),
        ({"model": "other"}, "is the baseline of model 'other' in 'production'"),
        ({"environment": "staging"}, "is the baseline of model 'digits' in 'staging'"),
    ],
)
def test_a_record_of_another_version_or_kind_is_refused(
    changes: dict[str, object],
    message: str,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _bundle(workspace, changes=changes)
    assert _gate(workspace, monkeypatch, "--baseline", BUNDLE) == 2
    assert message in capsys.readouterr().err
    assert not (workspace / BLESSING).exists()


@pytest.mark.parametrize(("policy", "code"), [("pass", 0), ("fail", 1)])
def test_a_missing_bundle_follows_on_missing_baseline(
    policy: str,
    code: int,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An empty folder (first release, expired artifact, nothing downloaded) is no baseline,
    and the gate says why; a folder that does not exist is a usage error."""
    edit_model_yaml(workspace, {"gate.change.on_missing_baseline": policy})
    (workspace / BUNDLE).mkdir()
    assert _gate(workspace, monkeypatch, "--baseline", BUNDLE) == code
    out, err = capsys.readouterr()
    assert f"no baseline bundle in {BUNDLE}" in out + err
    assert "artifact expired" in out + err
    blessing = json.loads((workspace / BLESSING).read_text())
    assert blessing["blessed"] is (policy == "pass")
    assert blessing["baseline"] is None

    assert _gate(workspace, monkeypatch, "--baseline", "no-such-bundle") == 2


# --- GitLab: the merge request's job fetches the bundle with CI_JOB_TOKEN -------------------


@pytest.fixture
def gitlab() -> Iterator[FakeApi]:
    yield from serve("gitlab")


def _ci(monkeypatch: pytest.MonkeyPatch, api: FakeApi) -> None:
    monkeypatch.setenv("CI_API_V4_URL", api.url)
    monkeypatch.setenv("CI_PROJECT_ID", "fork/gitops")  # a fork's MR: the target project wins
    monkeypatch.setenv("CI_MERGE_REQUEST_PROJECT_ID", api.state.project)
    monkeypatch.setenv("CI_DEFAULT_BRANCH", "main")
    monkeypatch.setenv("CI_JOB_TOKEN", TOKEN)
    monkeypatch.delenv("GITLAB_TOKEN", raising=False)


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def test_gitlab_fetch_reads_the_default_branch_bundle_with_the_job_token(
    workspace: Path,
    gitlab: FakeApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = _bundle(workspace)
    files = {f"{BUNDLE}/{p.name}": p.read_bytes() for p in made.iterdir()}
    files["../outside"] = b"not written"  # a path from the archive never reaches the disk
    shutil.rmtree(made)
    gitlab.state.artifacts[("main", "baseline: [digits]")] = _zip(files)
    _ci(monkeypatch, gitlab)
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MLOPS_BASELINE", BUNDLE)
    assert main(["baseline", "fetch"]) == 0
    assert "fetched baseline.json, model.tflite" in capsys.readouterr().out
    assert sorted(p.name for p in made.iterdir()) == [BaselineBundle.FILE, TFLITE]
    assert not (workspace.parent / "outside").exists()
    (request,) = gitlab.state.requests
    assert request.path == "/api/v4/projects/acme%2Fgitops/jobs/artifacts/main/download"
    assert request.query == {"job": "baseline: [digits]"}  # the model's matrix job
    assert request.headers["job-token"] == TOKEN
    assert "private-token" not in request.headers
    assert main(["gate"]) == 0  # --baseline from MLOPS_BASELINE
    assert json.loads((workspace / BLESSING).read_text())["baseline"]["release_id"] == "r-1"


def test_gitlab_fetch_without_artifacts_leaves_an_empty_folder(
    workspace: Path,
    gitlab: FakeApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _ci(monkeypatch, gitlab)
    monkeypatch.chdir(workspace)
    (workspace / BUNDLE).mkdir()
    (workspace / BUNDLE / "stale.json").write_text("{}")  # an older fetch's leftovers go
    assert main(["baseline", "fetch", "--out", BUNDLE]) == 0
    assert "never exported, or expired" in capsys.readouterr().out
    assert list((workspace / BUNDLE).iterdir()) == []


def test_gitlab_fetch_refuses_a_refused_token_and_a_missing_variable(
    workspace: Path,
    gitlab: FakeApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _ci(monkeypatch, gitlab)
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("CI_JOB_TOKEN", "wrong")
    assert main(["baseline", "fetch", "--out", BUNDLE]) == 2
    assert "401 Unauthorized" in capsys.readouterr().err
    monkeypatch.delenv("CI_JOB_TOKEN")
    assert main(["baseline", "fetch", "--out", BUNDLE]) == 2
    assert "needs CI_JOB_TOKEN" in capsys.readouterr().err
    assert not (workspace / BUNDLE).exists()


def test_gitlab_fetch_refuses_an_archive_that_is_not_a_zip(
    workspace: Path,
    gitlab: FakeApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gitlab.state.artifacts[("main", "baseline: [digits]")] = b"<html>not a zip</html>"
    _ci(monkeypatch, gitlab)
    monkeypatch.chdir(workspace)
    assert main(["baseline", "fetch", "--out", BUNDLE]) == 3
    assert "not a readable zip archive" in capsys.readouterr().err
    assert not (workspace / BUNDLE).exists()
