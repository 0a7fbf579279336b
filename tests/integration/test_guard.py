"""`mlops guard`: real Alertmanager-v4-shaped webhooks POSTed to the receiver running in uvicorn
on a free port, against a real local GitOps repository (a bare remote in a temporary folder)
where staging runs two releases, so a rollback has a target. Every bad input leaves the
remote's history as it was."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from pydantic import SecretStr

from pipelines.adapters import scm
from pipelines.cli import main
from pipelines.config import load_model
from pipelines.core.guard import RateLimit
from pipelines.errors import CheckFailed
from pipelines.stages import guard, promote
from tests.conftest import copy_repo
from tests.integration.test_gitops import (
    commits,
    evidence,
    git,
    main_in,
    release,
    remote,
    state,
)
from tests.unit.core.test_bluegreen import record
from tests.util import free_port, serve_in_thread

TOKEN = "s3cret-webhook-token"
QUIET = {"progress": lambda _: None}


def set_policy(root: Path, env: str, **fields: object) -> None:
    """Edit the template's environment state before the first release seeds the remote."""
    path = root / "manifests" / "environments" / f"{env}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.update(fields)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


TOOLS_IMAGE = "registry.example/mlops-tools@sha256:" + "ab" * 32


def make_root(tmp_path: Path, auto: str = "direct") -> Path:
    root = copy_repo(tmp_path / "repo")
    path = root / "manifests" / "gitops.yaml"
    path.write_text(path.read_text().replace('  image: ""', f"  image: {TOOLS_IMAGE}"))
    set_policy(root, "staging", auto_rollback=auto)
    release(root, 1)
    release(root, 2)  # 2 serves (green), 1 stays warm (blue)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path)


@contextlib.contextmanager
def serving(root: Path, *, dry_run: bool = False, max_rollbacks: int = 5) -> Iterator[str]:
    cfg = guard.GuardConfig(
        root, SecretStr(TOKEN), RateLimit(max_rollbacks, dt.timedelta(hours=1)), dry_run
    )
    with serve_in_thread(guard.app(cfg), free_port(), "the guard") as url:
        yield url


def alert(n: int = 2, fingerprint: str = "f00dfeed", **labels: str) -> dict[str, Any]:
    return {
        "status": labels.pop("status", "firing"),
        "labels": {
            "alertname": "ModelInputDrift",
            "action": "rollback",
            "environment": "staging",
            "model": "digits",
            "color": "green",
            "release": record(n).release_id,
            "severity": "critical",
            **labels,
        },
        "annotations": {"summary": "input drift on 12 of 64 features", "value": "0.1875"},
        "startsAt": "2026-12-06T11:50:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=mlops%3Adrift",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """The version 4 webhook payload, as Alertmanager 0.25 sends it."""
    return {
        "version": "4",
        "groupKey": '{}/{action="rollback"}:{alertname="ModelInputDrift"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "mlops-guard",
        "groupLabels": {"alertname": "ModelInputDrift"},
        "commonLabels": {"action": "rollback"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def post(url: str, body: Any, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{url}/alerts", data=data, headers=headers, timeout=60)


def outcomes(r: requests.Response) -> list[str]:
    return [x["outcome"] for x in r.json()["results"]]


def test_unauthenticated_or_malformed_webhooks_do_nothing(root: Path) -> None:
    before = commits(root)
    with serving(root) as url:
        for token in (None, "wrong", ""):
            r = post(url, payload(alert()), token)
            assert r.status_code == 401
            assert TOKEN not in r.text
        r = requests.post(
            f"{url}/alerts", json=payload(alert()), headers={"Authorization": TOKEN}, timeout=10
        )
        assert r.status_code == 401  # no Bearer scheme
        assert post(url, b"not json at all").status_code == 400
        assert post(url, {**payload(alert()), "version": "3"}).status_code == 400
        assert post(url, {"alerts": "x"}).status_code == 400
        assert post(url, b"x" * (guard.MAX_BODY_BYTES + 1)).status_code == 413
    assert commits(root) == before


def test_a_firing_alert_rolls_back_once_with_the_alerts_trailers_and_quarantines(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlops.guard")
    before = len(commits(root))
    with serving(root) as url:
        r = post(url, payload(alert()))
        assert r.status_code == 200, r.text
        assert outcomes(r) == ["rolled_back"]
        history = commits(root)
        assert len(history) == before + 1
        tip = history[-1]
        assert tip["subject"] == "rollback(staging): digits back to digits-000000000001 (blue)"
        assert tip["Rollback-Of"] == record(2).release_id
        assert tip["Release-Id"] == record(1).release_id
        assert tip["Alert"] == "ModelInputDrift"
        assert tip["Alert-Fingerprint"] == "f00dfeed"
        assert tip["Alert-Started-At"] == "2026-12-06T11:50:00.123Z"
        assert tip["Alert-Value"] == "0.1875"
        assert tip["Alert-Source"] == "http://prometheus:9090/graph?g0.expr=mlops%3Adrift"
        assert tip["Rollback-Reason"] == "input drift on 12 of 64 features"
        doc = state(root, "staging")
        assert doc["models"]["digits"]["active"] == "blue"  # type: ignore[index]
        assert doc["quarantined"] == [record(2).release_id]
        rendered = git(remote(root), "show", "--name-only", "--format=", "main").split()
        assert "manifests/rendered/staging/service-digits.yaml" in rendered
        # Alertmanager repeats itself: the same alert again changes nothing.
        for _ in range(3):
            again = post(url, payload(alert(), alert()))
            assert again.status_code == 200
            assert outcomes(again) == ["ignored", "ignored"]
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert 'mlops_guard_alerts_total{outcome="rolled_back"} 1.0' in metrics
        assert 'mlops_guard_alerts_total{outcome="ignored"} 6.0' in metrics
    assert len(commits(root)) == before + 1
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "mlops.guard"]
    assert any(e.get("outcome") == "rolled_back" for e in logged)
    assert TOKEN not in caplog.text


def test_the_guard_never_acts_twice_on_one_fingerprint_even_after_a_new_release(
    root: Path,
) -> None:
    with serving(root) as url:
        assert outcomes(post(url, payload(alert()))) == ["rolled_back"]
    release(root, 3)  # a fixed release serves now
    before = commits(root)
    with serving(root) as url:  # a restarted guard reads what it did from git
        r = post(url, payload(alert(3, fingerprint="f00dfeed")))
        assert outcomes(r) == ["ignored"]
        assert "already acted on fingerprint" in r.json()["results"][0]["detail"]
    assert commits(root) == before


def test_an_alert_for_a_release_that_no_longer_serves_does_nothing(root: Path) -> None:
    before = commits(root)
    with serving(root) as url:
        r = post(url, payload(alert(1)))
        assert outcomes(r) == ["ignored"]
        assert "no longer serves" in r.json()["results"][0]["detail"]
    assert commits(root) == before


def test_unknown_environments_models_and_other_alerts_are_ignored(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlops.guard")
    before = commits(root)
    with serving(root) as url:
        r = post(
            url,
            payload(
                alert(environment="qa"),
                alert(environment="../staging"),
                alert(model="cats"),
                alert(action="page"),
                alert(status="resolved"),
            ),
        )
        assert r.status_code == 200
        assert outcomes(r) == ["ignored"] * 5
        details = [x["detail"] for x in r.json()["results"]]
        assert details[:3] == [
            "unknown environment 'qa'",
            "unknown environment '../staging'",
            "unknown model 'cats'",
        ]
    assert commits(root) == before
    assert "unknown environment 'qa'" in caplog.text


def test_auto_rollback_off_does_nothing(tmp_path: Path) -> None:
    root = make_root(tmp_path, auto="off")
    before = commits(root)
    with serving(root) as url:
        r = post(url, payload(alert()))
        assert outcomes(r) == ["ignored"]
        assert "auto_rollback is off" in r.json()["results"][0]["detail"]
    assert commits(root) == before


def test_pr_mode_opens_a_request_and_a_repeat_does_not_update_it(tmp_path: Path) -> None:
    root = make_root(tmp_path, auto="pr")
    before = commits(root)
    with serving(root) as url:
        r = post(url, payload(alert()))
        assert outcomes(r) == ["proposed"], r.text
        branch = "rollback/staging/digits-000000000002"
        assert branch in git(remote(root), "branch", "--list")
        body = git(remote(root), "log", "-1", "--format=%B", branch)
        assert "Alert-Fingerprint: f00dfeed" in body
        again = post(url, payload(alert()))
        assert outcomes(again) == ["ignored"]
        assert "already acted on fingerprint" in again.json()["results"][0]["detail"]
    assert commits(root) == before  # main changes only when a person merges
    index = json.loads((root / ".infra/pull-requests/index.json").read_text())
    assert list(index) == ["1"]


def test_the_rate_limit_holds_per_environment(root: Path) -> None:
    with serving(root, max_rollbacks=1) as url:
        assert outcomes(post(url, payload(alert()))) == ["rolled_back"]
        release(root, 3)
        before = commits(root)
        r = post(url, payload(alert(3, fingerprint="0ther")))
        assert outcomes(r) == ["ignored"]
        assert "rate limit" in r.json()["results"][0]["detail"]
    assert commits(root) == before


def test_a_rollback_that_cannot_be_pushed_is_a_503_and_nothing_lands(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlops.guard")
    hook = remote(root) / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: pushes refused' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = commits(root)
    with serving(root) as url:
        r = post(url, payload(alert()))
        assert r.status_code == 503
        assert outcomes(r) == ["failed"]
        assert "refused the push" in r.json()["results"][0]["detail"]
    assert commits(root) == before
    assert "protected branch" in caplog.text


def test_dry_run_logs_what_it_would_do_and_commits_nothing(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlops.guard")
    before = commits(root)
    with serving(root, dry_run=True) as url:
        r = post(url, payload(alert()))
        assert outcomes(r) == ["dry_run"]
        assert r.json()["results"][0]["detail"] == (
            "would roll digits back from digits-000000000002 (direct)"
        )
    assert commits(root) == before
    assert '"outcome": "dry_run"' in caplog.text


def test_release_refuses_a_quarantined_release(root: Path) -> None:
    with serving(root) as url:
        assert outcomes(post(url, payload(alert()))) == ["rolled_back"]
    before = commits(root)
    with pytest.raises(CheckFailed, match="quarantined in staging") as exc:
        release(root, 2)
    assert "remove it from quarantined in environments/staging.yaml" in str(exc.value)
    assert commits(root) == before


def test_status_shows_what_the_guard_quarantined(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(root) as url:
        assert outcomes(post(url, payload(alert()))) == ["rolled_back"]
    capsys.readouterr()
    assert main_in(root, "status", "--no-live", "--env", "staging") == 0
    out = capsys.readouterr().out
    header, _, row = out.splitlines()[:3]
    assert header.split("|")[-2].strip() == "quarantined"
    assert row.split("|")[3].strip().startswith(f"{record(1).release_id} (blue")
    assert row.split("|")[-2].strip() == record(2).release_id


def test_promote_refuses_a_release_quarantined_in_the_target(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    set_policy(root, "production", quarantined=[record(2).release_id])
    release(root, 2)
    evidence(root, record(2))
    before = commits(root)
    with pytest.raises(CheckFailed, match="quarantined in production") as exc:
        promote.run(load_model(root, "digits"), "production", "staging", **QUIET)
    assert "environments/production.yaml" in str(exc.value)
    assert commits(root) == before
    assert git(remote(root), "branch", "--list", "promote/*") == ""


def test_the_guard_closes_the_promotion_of_the_release_it_rolls_back(root: Path) -> None:
    """A promotion proposed before the alert must not carry the bad release to production:
    the guard closes it, and should it be reopened, merging it is refused."""
    ws = load_model(root, "digits")
    evidence(root, record(2))
    assert promote.run(ws, "production", "staging", **QUIET).number == 1
    branch = f"promote/production/{record(2).release_id}"
    proposed = git(remote(root), "rev-parse", branch).strip()
    with serving(root) as url:
        r = post(url, payload(alert()))
        assert outcomes(r) == ["rolled_back"]
        assert "closed its promotion #1" in r.json()["results"][0]["detail"]
    local = scm.Local(root)
    assert local.list_open(base="main") == []
    comment = (local.dir / "comments" / "1.md").read_text()
    assert f"{record(2).release_id} was rolled back in staging" in comment
    assert git(remote(root), "branch", "--list", "promote/*") == ""
    # Reopened by hand, its branch pushed back: merging it is still refused.
    git(remote(root), "branch", branch, proposed)
    local.set_state(1, "open")
    before = commits(root)
    with pytest.raises(CheckFailed, match="not merging the promotion of digits-000000000002"):
        promote.merge_local(ws, "promote/production/")
    assert commits(root) == before


def test_the_guard_does_not_start_without_its_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLOPS_GUARD_TOKEN", raising=False)
    assert main(["guard", "serve", "--port", "1"]) == 2
    assert "set MLOPS_GUARD_TOKEN" in capsys.readouterr().err
    assert main(["guard", "serve", "--max-rollbacks", "0"]) == 2
