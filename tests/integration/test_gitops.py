"""Releases, promotions and rollbacks on real git: a bare GitOps remote in a temporary folder,
six racing releases, kills in the middle of a release, and the history they leave."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.adapters import gitops
from pipelines.adapters import rendering as render
from pipelines.adapters.artifacts import MONITOR_REPORT, monitor_dir
from pipelines.adapters.releasing import apply_state, land
from pipelines.cli import main
from pipelines.config import ReleaseRecord, load_gitops, load_model
from pipelines.errors import CheckFailed, ConfigError
from pipelines.evidence import save
from pipelines.stages import promote, status
from pipelines.stages.release import publish
from tests import util
from tests.conftest import ROOT, copy_repo
from tests.unit.core.test_bluegreen import record

QUIET = {"progress": lambda _: None}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


def remote(root: Path) -> Path:
    return root / ".infra" / "gitops.git"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def commits(root: Path) -> list[dict[str, str]]:
    """The GitOps branch's history, oldest first: subject plus trailers."""
    out = git(
        remote(root), "log", "--reverse", "--topo-order", "--format=%H%x00%s%x00%B%x1e", "main"
    )
    history = []
    for entry in filter(str.strip, out.split("\x1e")):
        sha, subject, body = entry.strip().split("\x00")
        history.append({"sha": sha, "subject": subject, **gitops.trailers(body)})
    return history


def state(root: Path, env: str) -> dict[str, object]:
    text = git(remote(root), "show", f"main:manifests/environments/{env}.yaml")
    doc: dict[str, object] = yaml.safe_load(text)
    return doc


def release(root: Path, n: int, env: str = "staging") -> str | None:
    return publish(root, load_model(root, "digits"), env, record(n), **QUIET).commit


def promote_releases(root: Path, *numbers: int) -> promote.PromoteResult:
    """Release each to staging and promote it to production, in order; the last result."""
    ws = load_model(root, "digits")
    for n in numbers:
        release(root, n)
        evidence(root, record(n))
        result = promote.run(ws, "production", "staging", **QUIET)
    return result


def assert_consistent(root: Path) -> None:
    """The tip's rendered files are exactly what its environment state renders to."""
    with gitops.checkout(load_gitops(root), root) as repo:
        rendering = render.render_with(root, repo.manifests, load_gitops(root))
        assert rendering.violations == []
        for env in ("staging", "production"):
            assert render.stale_diff(repo.manifests, rendering.files, env) == ""


def evidence(root: Path, rec: ReleaseRecord) -> None:
    """The artifacts a pipeline run leaves for a release (what promote reads)."""
    art = root / "artifacts/digits"
    records = {
        "validate/summary.json": util.validation_summary(rec.data_md5, rec.data_md5),
        "gate/blessing.json": util.blessing(rec.model_sha256, rec.data_md5),
        "package/release.json": util.packaged_release(rec.release_id, rec.image, rec.model_sha256),
        "verify/infra_blessing.json": util.infra_blessing(
            rec.release_id, rec.image, rec.model_sha256
        ),
    }
    for rel, doc in records.items():
        save(art / rel, doc)


def test_a_release_is_one_commit_with_state_rendered_yaml_and_trailers(root: Path) -> None:
    sha = release(root, 1)
    assert sha is not None
    history = commits(root)
    assert [c["subject"] for c in history] == [
        "Seed the GitOps repository from the template's manifests/",
        "release(staging): digits digits-000000000001 to blue",
    ]
    tip = history[-1]
    rec = record(1)
    assert tip["Release-Id"] == rec.release_id
    assert tip["Model-Sha256"] == rec.model_sha256
    assert tip["Data-Md5"] == rec.data_md5
    assert tip["Image-Digest"] == rec.image
    assert tip["Source-Commit"] == rec.source_commit
    assert tip["Gate"] == "blessed"
    assert (tip["Environment"], tip["Color"]) == ("staging", "blue")
    changed = git(remote(root), "show", "--name-only", "--format=", "main").split()
    assert "manifests/environments/staging.yaml" in changed
    assert "manifests/rendered/staging/deployment-digits-blue.yaml" in changed
    assert not any("production" in path for path in changed)
    assert state(root, "staging")["models"]["digits"]["active"] == "blue"  # type: ignore[index]
    assert_consistent(root)


def test_releasing_what_already_serves_makes_no_commit(root: Path) -> None:
    release(root, 1)
    before = len(commits(root))
    assert release(root, 1) is None
    assert len(commits(root)) == before


def test_the_next_release_flips_colors_and_keeps_the_previous_warm(root: Path) -> None:
    release(root, 1)
    release(root, 2)
    slot = state(root, "staging")["models"]["digits"]  # type: ignore[index]
    assert slot["active"] == "green"
    assert slot["blue"]["release_id"] == record(1).release_id
    preview = yaml.safe_load(
        git(remote(root), "show", "main:manifests/rendered/staging/service-digits-preview.yaml")
    )
    assert preview["spec"]["selector"]["color"] == "blue"
    assert_consistent(root)


def test_production_cannot_be_released_to_directly(root: Path) -> None:
    with pytest.raises(ConfigError, match="changes only through promotion pull requests"):
        release(root, 1, env="production")


def test_a_policy_violation_blocks_the_release_and_nothing_is_pushed(root: Path) -> None:
    release(root, 1)
    template = root / "manifests/templates/deployment.yaml.j2"
    template.write_text(
        template.read_text().replace(
            "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"
        )
    )
    before = commits(root)
    with pytest.raises(CheckFailed, match="read-only-root"):
        release(root, 2)
    assert commits(root) == before


RACER = """
import sys
from pathlib import Path
from pipelines.config import load_model
from pipelines.adapters.releasing import apply_state, land
from pipelines.stages.release import publish
from tests.unit.core.test_bluegreen import record
root = Path(sys.argv[1])
publish(root, load_model(root, "digits"), "staging", record(int(sys.argv[2])),
        progress=lambda _: None)
"""


def _racer(root: Path, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RACER, str(root), str(n)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_racing_releases_all_land_none_lost_or_garbled(root: Path) -> None:
    # Six processes on two cores: most pushes lose a race at least once and must retry.
    release(root, 100)  # seed the remote before the race
    racers = [_racer(root, n) for n in range(1, 7)]
    for p in racers:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    landed = [c["Release-Id"] for c in commits(root) if c["subject"].startswith("release(")]
    assert sorted(landed[1:]) == sorted(record(n).release_id for n in range(1, 7))
    for c in commits(root)[2:]:  # every commit is whole: the state it left renders cleanly
        text = git(remote(root), "show", f"{c['sha']}:manifests/environments/staging.yaml")
        slot = yaml.safe_load(text)["models"]["digits"]
        assert slot[slot["active"]]["release_id"] == c["Release-Id"]
    assert_consistent(root)


def test_a_release_killed_at_any_point_leaves_all_or_nothing(root: Path) -> None:
    release(root, 100)
    rng = random.Random(7)
    landed = 0
    for trial in range(6):
        before = commits(root)
        proc = _racer(root, 200 + trial)
        time.sleep(rng.uniform(0.2, 2.5))  # somewhere in clone, render, commit or push
        proc.send_signal(signal.SIGKILL)
        proc.communicate()  # waits, and closes its pipes (wait() alone left them open)
        after = commits(root)
        assert after[: len(before)] == before
        assert len(after) - len(before) in (0, 1)
        if len(after) > len(before):
            landed += 1
            assert after[-1]["Release-Id"] == record(200 + trial).release_id
        assert git(remote(root), "branch", "--list").split() == ["*", "main"]
        assert_consistent(root)
    release(root, 300)  # and the repository still takes releases
    assert commits(root)[-1]["Release-Id"] == record(300).release_id


def test_promotion_opens_one_request_updates_it_and_merge_deploys(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = load_model(root, "digits")
    release(root, 1)
    evidence(root, record(1))
    first = promote.run(ws, "production", "staging", **QUIET)
    assert first.created is True
    assert first.number == 1
    assert first.detail == (
        "opened #1 (promote/production/digits-000000000001); "
        "digits-000000000001 serves production once it is approved and "
        "merged"
    )
    branch = "promote/production/digits-000000000001"
    assert branch in git(remote(root), "branch", "--list")
    body = Path(first.url).read_text()
    for section in (
        "## Data validation",
        "604 of 604 expectations met",
        "candidate vs production",
        "## Gate",
        "min_accuracy",
        "image: `r.example/d@sha256:",
        "SBOM:",
        "## Rendered changes",
        "added (10)",  # the 7 serving objects, and the rules, PodMonitor and dashboard
        "`deployment-digits-blue.yaml`",
        "`prometheusrule-digits.yaml`",
    ):
        assert section in body, section
    assert "Monitoring report" not in body  # no `mlops monitor` ran here
    # The scheduled retraining's monitor report on the target rides along with the evidence.
    report = monitor_dir(root, "production") / MONITOR_REPORT
    report.parent.mkdir(parents=True)
    report.write_text("# Monitoring report: production\n\n**Failing: drift**\n")
    again = promote.run(ws, "production", "staging", **QUIET)
    assert (again.number, again.created) == (1, False)
    body = Path(again.url).read_text()
    assert "## Monitoring report on production (why this retraining ran)" in body
    assert "### Monitoring report: production\n\n**Failing: drift**" in body
    index = json.loads((root / ".infra/pull-requests/index.json").read_text())
    assert list(index) == ["1"]
    assert state(root, "production")["models"] == {}  # nothing deployed before the merge

    capsys.readouterr()
    assert main_in(root, "promote", "--merge", "--to", "production") == 0
    assert capsys.readouterr().out.rstrip().endswith("; digits-000000000001 now serves production")
    slot = state(root, "production")["models"]["digits"]  # type: ignore[index]
    assert slot["blue"]["release_id"] == record(1).release_id
    merge = commits(root)[-1]
    assert merge["subject"].startswith("Merge #1: Promote digits digits-000000000001")
    assert merge["Approved-By"].startswith("local reviewer")
    assert merge["Release-Id"] == record(1).release_id
    assert branch not in git(remote(root), "branch", "--list")
    assert (
        json.loads((root / ".infra/pull-requests/index.json").read_text())["1"]["state"] == "merged"
    )
    assert_consistent(root)


def test_promotion_refuses_evidence_of_another_release(root: Path) -> None:
    release(root, 1)
    evidence(root, record(2))
    with pytest.raises(ConfigError, match="the artifacts here are for digits-000000000002"):
        promote.run(load_model(root, "digits"), "production", "staging", **QUIET)


def test_a_newer_promotion_closes_the_ones_it_supersedes(root: Path) -> None:
    ws = load_model(root, "digits")
    result = promote_releases(root, 1, 2)
    assert (result.number, result.superseded) == (2, (1,))
    assert "closed superseded #1" in result.detail
    index = json.loads((root / ".infra/pull-requests/index.json").read_text())
    assert {n: pr["state"] for n, pr in index.items()} == {"1": "closed", "2": "open"}
    comment = (root / ".infra/pull-requests/comments/1.md").read_text()
    assert "Superseded by #2, which promotes digits-000000000002" in comment
    branches = git(remote(root), "branch", "--list")
    assert "promote/production/digits-000000000001" not in branches
    assert "promote/production/digits-000000000002" in branches
    again = promote.run(ws, "production", "staging", **QUIET)  # nothing left to supersede
    assert (again.number, again.created, again.superseded) == (2, False, ())
    rows = {r.env: r for r in status.run(ws, live=False).rows}
    assert rows["production"].awaiting == "#2 promote digits-000000000002"
    assert rows["staging"].awaiting == "-"
    assert main_in(root, "promote", "--merge", "--to", "production") == 0  # merges #2
    slot = state(root, "production")["models"]["digits"]  # type: ignore[index]
    assert slot["blue"]["release_id"] == record(2).release_id


def test_a_promotion_whose_environment_changed_meanwhile_does_not_merge(root: Path) -> None:
    """Git merges the two without a conflict, but the rendered YAML would be from before the
    change: the merge is refused and the GitOps branch is left as it was."""
    ws = load_model(root, "digits")
    promote_releases(root, 1)
    cfg = load_gitops(root)
    with gitops.checkout(cfg, root) as repo:

        def rename() -> str:
            production = repo.read_state("production")
            apply_state(repo, ws, cfg, production.model_copy(update={"namespace": "ml-prod"}))
            return "production: move to namespace ml-prod"

        land(repo, cfg, cfg.branch, rename, QUIET["progress"])
    tip = commits(root)[-1]["sha"]
    with pytest.raises(CheckFailed, match="#1 no longer merges cleanly"):
        promote.merge_local(ws, "promote/production/", **QUIET)
    assert commits(root)[-1]["sha"] == tip
    assert_consistent(root)


def test_rollback_is_a_commit_that_flips_back_and_names_what_it_undoes(root: Path) -> None:
    release(root, 1)
    assert main_in(root, "rollback", "--env", "staging") == 1  # nothing to go back to
    release(root, 2)
    assert main_in(root, "rollback", "--env", "staging") == 0
    tip = commits(root)[-1]
    assert tip["subject"] == "rollback(staging): digits back to digits-000000000001 (blue)"
    assert tip["Rollback-Of"] == record(2).release_id
    assert tip["Release-Id"] == record(1).release_id
    slot = state(root, "staging")["models"]["digits"]  # type: ignore[index]
    assert slot["active"] == "blue"
    assert slot["green"]["release_id"] == record(2).release_id  # still deployed
    assert_consistent(root)


def test_rollback_as_a_pull_request(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = root / "manifests/environments/staging.yaml"
    path.write_text(path.read_text().replace("rollback: direct", "rollback: pr"))
    release(root, 1)
    release(root, 2)
    capsys.readouterr()
    assert main_in(root, "rollback", "--env", "staging") == 0
    out = capsys.readouterr().out
    # Nothing serves differently until the request is merged, and the message says so.
    assert out.startswith(
        "rollback: opened #1 (rollback/staging/digits-000000000002) to roll "
        "staging back to digits-000000000001; digits-000000000002 serves "
        "until it is approved and merged"
    ), out
    assert "serves staging again" not in out
    assert state(root, "staging")["models"]["digits"]["active"] == "green"  # type: ignore[index]
    assert main_in(root, "rollback", "--env", "staging", "--merge") == 0
    out = capsys.readouterr().out
    assert "merged #1 (rollback/staging/digits-000000000002) as " in out
    assert out.rstrip().endswith("; digits-000000000001 now serves staging"), out
    assert state(root, "staging")["models"]["digits"]["active"] == "blue"  # type: ignore[index]
    assert commits(root)[-1]["Rollback-Of"] == record(2).release_id
    # A second rollback would open a request that undoes the first: refused.
    assert main_in(root, "rollback", "--env", "staging") == 1
    assert (
        "the previous rollback took digits-000000000002 out of service" in capsys.readouterr().err
    )


def test_a_direct_rollback_says_what_serves_now(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release(root, 1)
    release(root, 2)
    capsys.readouterr()
    assert main_in(root, "rollback", "--env", "staging") == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "rollback: digits-000000000001 serves staging again (was digits-000000000002); committed "
    ), out


def test_rolling_back_twice_does_not_silently_reactivate_what_the_first_removed(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release(root, 1)
    release(root, 2)
    assert main_in(root, "rollback", "--env", "staging") == 0  # 1 serves, 2 removed
    before = commits(root)
    capsys.readouterr()
    assert main_in(root, "rollback", "--env", "staging") == 1
    err = capsys.readouterr().err
    assert (
        "not rolling digits back in staging: the previous rollback took "
        "digits-000000000002 out of service; rolling back again would make "
        "digits-000000000002 (green) serve instead of digits-000000000001" in err
    ), err
    assert "re-run with --reactivate" in err
    assert commits(root) == before
    # Asked for explicitly, it is done, and recorded as a rollback of 1.
    assert main_in(root, "rollback", "--env", "staging", "--reactivate") == 0
    assert commits(root)[-1]["Release-Id"] == record(2).release_id
    assert commits(root)[-1]["Rollback-Of"] == record(1).release_id
    assert main_in(root, "rollback", "--env", "staging") == 1  # and not undone silently either
    # A release in between makes the next rollback an ordinary one again.
    release(root, 3)
    assert main_in(root, "rollback", "--env", "staging") == 0
    slot = state(root, "staging")["models"]["digits"]  # type: ignore[index]
    assert slot[slot["active"]]["release_id"] == record(2).release_id


def test_a_direct_promotion_says_it_deployed(root: Path) -> None:
    path = root / "manifests/environments/production.yaml"
    path.write_text(path.read_text().replace("promotion: pr", "promotion: direct"))
    result = promote_releases(root, 1)
    assert result.detail.startswith(
        "digits-000000000001 now serves production (blue); committed "
    ), result.detail
    assert result.detail.endswith(" to main")
    assert "None" not in result.detail
    assert commits(root)[-1]["Release-Id"] == record(1).release_id


def test_merge_with_nothing_open_points_at_the_right_command(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release(root, 1)
    capsys.readouterr()
    assert main_in(root, "rollback", "--env", "staging", "--merge") == 2
    err = capsys.readouterr().err
    assert "no open rollback request for staging" in err
    assert "`mlops rollback --env staging`" in err
    assert "promote" not in err
    assert main_in(root, "promote", "--merge", "--to", "production") == 2
    err = capsys.readouterr().err
    assert "no open promote request for production" in err
    assert "`mlops promote --to production`" in err


def test_the_history_tells_the_whole_story(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Release, promote, approve, release again, promote, approve, roll production back."""
    ws = load_model(root, "digits")
    for n in (1, 2):
        release(root, n)
        evidence(root, record(n))
        promote.run(ws, "production", "staging", **QUIET)
        assert main_in(root, "promote", "--merge", "--to", "production") == 0
    assert main_in(root, "rollback", "--env", "production") == 0
    story = [
        (c["subject"].split(":")[0], c.get("Release-Id"), c.get("Rollback-Of"))
        for c in commits(root)
    ]
    assert story == [
        ("Seed the GitOps repository from the template's manifests/", None, None),
        ("release(staging)", record(1).release_id, None),
        ("promote(production)", record(1).release_id, None),
        ("Merge #1", record(1).release_id, None),
        ("release(staging)", record(2).release_id, None),
        ("promote(production)", record(2).release_id, None),
        ("Merge #2", record(2).release_id, None),
        ("rollback(production)", record(1).release_id, record(2).release_id),
    ]
    capsys.readouterr()
    assert main_in(root, "status", "--no-live") == 0
    out = capsys.readouterr().out
    assert "| production  | digits | digits-000000000001 (blue" in out
    assert "digits-000000000002 (green" in out
    assert "open requests not checked" not in out


def test_status_without_a_provider_token_still_shows_git(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    release(root, 1)
    monkeypatch.setenv("MLOPS_SCM_PROVIDER", "github")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert main_in(root, "status", "--no-live") == 0
    out = capsys.readouterr().out
    assert "| staging     | digits | digits-000000000001 (blue" in out
    assert "open requests not checked: the github provider needs GITHUB_TOKEN" in out


def test_status_names_a_kubeconfig_that_does_not_load_and_still_shows_git(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    release(root, 1)
    monkeypatch.setenv("KUBECONFIG", str(root / "no-such-kubeconfig"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # not taken for "in a pod"
    assert main_in(root, "status") == 0
    out = capsys.readouterr().out
    assert "| staging     | digits | digits-000000000001 (blue" in out
    assert "no kube context: KUBECONFIG names" in out
    assert "no-such-kubeconfig: no such file" in out


def test_tokens_never_appear_in_errors(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "ghp_s3cr3tT0kenValue"
    monkeypatch.setenv("MLOPS_GITOPS_TOKEN", secret)
    monkeypatch.setenv("MLOPS_GITOPS_REMOTE", f"https://user:{secret}@127.0.0.1:1/gitops.git")
    assert main_in(root, "status", "--no-live") == 3
    err = capsys.readouterr().err
    assert "cloning the GitOps repository failed" in err
    assert secret not in err
    import base64

    assert base64.b64encode(f"x-access-token:{secret}".encode()).decode() not in err


def main_in(root: Path, *args: str) -> int:
    cwd = Path.cwd()
    os.chdir(root)
    try:
        return main(list(args))
    finally:
        os.chdir(cwd)
