"""Seconds from the start of drift to the guard's rollback commit.

The loop of tests/integration/test_monitoring_loop.py, built by the same helpers
(tests/monitoring/loop.py): a real released image in Docker, Debian's Prometheus with staging's
rules at the loop's short windows, Debian's Alertmanager, `mlops guard serve`, and the local
GitOps remote. Each run restores the remote to two releases (the second active), starts the loop
afresh, serves reference-like traffic until a full window, shifts it, and times the shift to
the rollback commit. Then what production's settings (RuleSettings() defaults, the rendered
AlertmanagerConfig's groupWait, Prometheus' default 1 m scrape) imply, as arithmetic.

    .venv/bin/python bench/monitoring_loop.py [--runs N]

Needs the local infrastructure (`make infra-up`) and Debian's prometheus and alertmanager.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import ROOT, machine, median, table


def prepare(tmp: Path) -> Path:
    """A copy of this checkout trained as the tests train it (FAST_TRAINING)."""
    from pipelines.config import load_model
    from pipelines.stages import evaluate, ingest, train, validate
    from tests.conftest import FAST_TRAINING, copy_repo, edit_model_yaml

    root = copy_repo(tmp / "repo")
    edit_model_yaml(root, FAST_TRAINING)
    ws = load_model(root, "digits")
    ingest.run(ws)
    validate.run(ws)
    train.run(ws)
    evaluate.run(ws)
    return root


def production_arithmetic() -> tuple[float, float, str]:
    """(earliest, latest, how) seconds from a sudden drift to the rollback commit that the
    production settings imply, leaving out the guard's own commit time (seconds, measured in
    the loop)."""
    from pipelines.core import monitoring
    from tests.monitoring.loop import seconds

    s = monitoring.RuleSettings()
    scrape = 60.0  # the PodMonitor sets no interval: Prometheus' default scrape_interval
    evaluation = seconds(s.evaluation_interval)
    window, hold = seconds(s.window), seconds(s.drift_for)
    group_wait = 10.0  # manifests/templates/guard/alertmanagerconfig.yaml.j2 (groupWait)
    # Earliest: a shift large enough that the first drifted scrape moves the window's mean past
    # the threshold; latest: one that needs the whole window drifted. Then `for`, the
    # evaluation that sees it elapse, and Alertmanager's first group wait.
    earliest = scrape + evaluation + hold + evaluation + group_wait
    latest = window + scrape + evaluation + hold + evaluation + group_wait
    how = (
        f"[scrape {scrape:.0f} + eval {evaluation:.0f} .. window {window:.0f} + scrape "
        f"{scrape:.0f} + eval {evaluation:.0f}] + for {hold:.0f} + eval {evaluation:.0f} + "
        f"group_wait {group_wait:.0f} (s)"
    )
    return earliest, latest, how


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="timed runs (default: %(default)s)")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    sys.path.insert(0, str(ROOT))
    from tests.conftest import infra_status
    from tests.monitoring import loop

    for ok, why in (infra_status(), loop.available()):
        if not ok:
            print(f"monitoring_loop: {why}", file=sys.stderr)
            return 3
    os.environ.setdefault("BASE_IMAGE", (ROOT / ".infra/base-image").read_text().strip())
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp_name:
        tmp = Path(tmp_name)
        # Keras reports each epoch on stdout, which holds only the table.
        with contextlib.redirect_stdout(sys.stderr):
            root = prepare(tmp)
            loop.stage(root, (4, 5))
        snapshot = tmp / "remote-snapshot"
        shutil.copytree(loop.remote(root), snapshot)
        for i in range(args.runs):
            shutil.rmtree(loop.remote(root))
            shutil.copytree(snapshot, loop.remote(root))
            with loop.running_loop(root, tmp / f"run-{i}") as lp:
                took = loop.drift_to_rollback(lp)
            print(f"run {i + 1}: {took:.1f} s", file=sys.stderr)
            times.append(took)
    earliest, latest, how = production_arithmetic()
    w = loop.WINDOW
    subject = median(times)
    print(
        f"Drift to rollback commit, {args.runs} runs, median (min..max); {machine()}\n\n"
        + table(
            ["settings", "seconds", "ratio to the loop"],
            [
                [
                    f"the loop test's: window {w.window}, for {w.drift_for}, scrape and eval "
                    f"{loop.SCRAPE}, group_wait {loop.GROUP_WAIT}",
                    f"{subject:.1f} ({min(times):.1f}..{max(times):.1f})",
                    "1.0x",
                ],
                [
                    "production defaults (RuleSettings()), by arithmetic: " + how,
                    f"{earliest:.0f}..{latest:.0f} + the guard's commit",
                    f"{earliest / subject:.0f}x..{latest / subject:.0f}x",
                ],
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
