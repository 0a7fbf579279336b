"""The monitoring loop, for real (issue 11 part 6): released digits images running in Docker,
Debian's Prometheus scraping them every second with the rules staging has committed (windows
shortened to seconds), Debian's Alertmanager routing ``action=rollback`` alerts to a real
``mlops guard serve`` subprocess, and the local GitOps remote the guard commits rollbacks to.

Staging allows automatic rollbacks (``auto_rollback: direct``) and holds two real releases, so
a rollback has somewhere to go; the third scenario releases a third. The scenarios run in order
on one loop: reference-like traffic (nothing happens), drifted traffic (ModelInputDrift, a
rollback commit, the release quarantined), a server answering errors (ModelErrorRate, the same).
The set-up lives in tests/monitoring/loop.py, which bench/monitoring_loop.py shares.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.monitoring import loop

pytestmark = pytest.mark.infra
# The releases' training epochs: the first is the prepared workspace's (FAST_TRAINING).
EPOCHS = (4, 5, 6)


@pytest.fixture(scope="module")
def staged(
    prepared: Path, infra: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, list[str]]]:
    """A repository copy whose staging serves two real releases (packaged, pushed, verified,
    released), the second active; and the ids, oldest first."""
    ok, why = loop.available()
    require("Debian's prometheus and prometheus-alertmanager", ok, why)
    root = tmp_path_factory.mktemp("loop") / "repo"
    shutil.copytree(prepared, root, symlinks=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("BASE_IMAGE", infra)
    try:
        yield root, loop.stage(root, EPOCHS[:2])
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def running(
    staged: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[loop.Loop]:
    root, _ = staged
    with loop.running_loop(root, tmp_path_factory.mktemp("loop-run")) as lp:
        yield lp


def status_row(root: Path) -> list[str]:
    """`mlops status --no-live` (the CLI) for staging: [active, preview, ..., quarantined]."""
    out = loop.status(root)
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| staging")]
    assert len(rows) == 1, out
    return [cell.strip() for cell in rows[0]]


def assert_rolled_back(
    lp: loop.Loop, before: str, bad: str, previous: str, alert: str
) -> dict[str, str]:
    """The guard's rollback commit on the remote, with the alert's facts as trailers, and
    `mlops status` agreeing: previous active, bad quarantined."""
    root = lp.root
    log = loop.git(loop.remote(root), "rev-list", f"{before}..main").split()
    assert len(log) == 1, f"expected one rollback commit, got {len(log)}\n{lp.diagnose()}"
    tip = loop.trailers(root)
    assert tip["subject"].startswith(f"rollback({loop.ENV}): digits back to {previous}"), tip
    assert tip["Rollback-Of"] == bad
    assert tip["Release-Id"] == previous
    assert tip["Alert"] == alert, f"{tip}\n{lp.diagnose()}"
    assert tip["Rollback-Reason"]
    assert tip["Alert-Started-At"]
    # The fingerprint is the one Alertmanager gave the alert it delivered.
    delivered = {
        a["fingerprint"]
        for a in loop.get_json(f"{lp.alertmanager_url}/api/v2/alerts")
        if a["labels"]["alertname"] == alert and a["labels"]["release"] == bad
    }
    assert tip["Alert-Fingerprint"] in delivered, f"{tip}\n{lp.diagnose()}"
    state = loop.committed(root, f"manifests/environments/{loop.ENV}.yaml")
    assert bad in state["quarantined"]
    row = status_row(root)
    assert row[2].startswith(f"{previous} ("), row
    assert bad in row[-1].split(", "), row
    return tip


def test_reference_like_traffic_fires_nothing_and_commits_nothing(
    staged: tuple[Path, list[str]], running: loop.Loop
) -> None:
    root, ids = staged
    color, serving, _ = loop.active(root)
    assert serving == ids[-1]
    before = loop.head(root)
    n = loop.names(running.root)
    with running.serve(color) as (url, release), loop.Traffic(url, loop.test_rows(root)):
        assert release == serving
        loop.wait_full_window(running)
        # Then a few more windows of reference-like traffic, watching every second.
        deadline = time.monotonic() + 3 * loop.seconds(loop.WINDOW.window)
        while time.monotonic() < deadline:
            assert running.alerts() == [], running.diagnose()
            time.sleep(1)
        # The signals exist (a quiet loop because nothing was computed would prove nothing).
        assert running.query(n.drifted_fraction), running.diagnose()
        assert running.query(n.prediction_psi), running.diagnose()
    assert loop.head(root) == before
    assert status_row(root)[-1] == "-"


def test_drifted_traffic_fires_drift_and_the_guard_rolls_back_and_quarantines(
    staged: tuple[Path, list[str]], running: loop.Loop
) -> None:
    root, _ = staged
    _, bad, previous = loop.active(root)
    assert previous is not None
    before = loop.head(root)
    loop.drift_to_rollback(running)
    assert_rolled_back(running, before, bad, previous, "ModelInputDrift")


def test_a_release_answering_errors_fires_error_rate_and_is_rolled_back(
    staged: tuple[Path, list[str]], running: loop.Loop, tmp_path: Path
) -> None:
    """A third release, whose pods find a corrupt model file where the model should be (a bad
    volume, a truncated layer): the server stays up, never becomes ready, and answers every
    predict 503, which the error ratio counts (a client got no prediction)."""
    root, _ = staged
    loop.retrain(root, EPOCHS[2])
    faulty = loop.release_candidate(root)
    color, bad, previous = loop.active(root)
    assert bad == faulty
    assert previous is not None
    before = loop.head(root)
    corrupt = tmp_path / "model.tflite"
    corrupt.write_bytes(b"\0" * 4096)
    corrupt.chmod(0o644)
    with (
        running.serve(color, broken_model=corrupt) as (url, _),
        loop.Traffic(url, loop.test_rows(root)) as traffic,
    ):
        loop.wait_for(
            "ModelErrorRate to fire",
            lambda: running.firing("ModelErrorRate", bad),
            60,
            running.diagnose,
        )
        loop.wait_for(
            "the guard's rollback commit",
            lambda: loop.head(root) != before,
            60,
            running.diagnose,
        )
        assert set(traffic.codes) == {503}, traffic.codes
    assert_rolled_back(running, before, bad, previous, "ModelErrorRate")
