"""`mlops monitor` against a real Prometheus (Debian's 2.42) scraping the real model server.

Two servers run the trained digits model in-process, each as the active release of one
environment (the scrape adds each target's namespace, as the PodMonitor does in a cluster):
staging's gets reference-like traffic (the test split), production's the same rows with a few
features shifted. Prometheus scrapes both every second; the report must find drift in
production's shifted features and none in staging.

Set UPDATE_DOCS_PICTURE=1 to copy the drifted release's dashboard PNG to docs/, where the
README shows it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from PIL import Image

from pipelines.adapters.prometheus import Prometheus
from pipelines.cli import main
from pipelines.errors import InfraError
from pipelines.serving.app import create_app
from pipelines.serving.settings import Settings
from tests.conftest import ROOT, copy_repo, require
from tests.integration.test_server import _model_dir
from tests.unit.core.test_bluegreen import record
from tests.util import free_port, serve_in_thread

PROMETHEUS = shutil.which("prometheus")
# Staging's release gets reference-like traffic, production's a drifted one.
RELEASES = {"staging": record(1), "production": record(2)}
# Shifted in production's traffic: pixels of the digits' middle rows, which vary in the
# reference (a constant pixel's effect size would say little about the report).
SHIFTED = [f"pixel_{i}" for i in (19, 20, 21, 27, 28, 29, 35, 36)]
SHIFT = 6.0
WINDOW = "40s"  # covers the whole test: traffic starts after the fixture's first scrapes
DOCS_PICTURE = ROOT / "docs" / "monitor-dashboard.png"


@dataclass(frozen=True)
class Setup:
    root: Path
    prometheus: str
    server: str  # a model server: an HTTP server that is not Prometheus


def _set_state(root: Path) -> None:
    """Each environment serves its release (blue), before the first use seeds the GitOps repo."""
    for env, rec in RELEASES.items():
        path = root / "manifests" / "environments" / f"{env}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["models"] = {"digits": {"active": "blue", "blue": rec.model_dump()}}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


@contextlib.contextmanager
def _server(model_dir: Path, release: str) -> Iterator[str]:
    port = free_port()
    settings = Settings(
        model_dir=model_dir,
        host="127.0.0.1",
        port=port,
        release=release,
        color="blue",
        max_batch=32,
    )
    with serve_in_thread(create_app(settings), port, "the model server") as url:
        yield url


@contextlib.contextmanager
def _prometheus(tmp: Path, targets: dict[str, str]) -> Iterator[str]:
    """Prometheus scraping each environment's server every second, with the labels a cluster's
    PodMonitor gives its targets."""
    assert PROMETHEUS is not None
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "digits",
                "honor_labels": True,
                "static_configs": [
                    {
                        "targets": [url.removeprefix("http://")],
                        "labels": {
                            "namespace": f"mlops-{env}",
                            "model": "digits",
                            "release": RELEASES[env].release_id,
                            "color": "blue",
                        },
                    }
                    for env, url in targets.items()
                ],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (tmp / "prometheus.log").open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-2000:]
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "Prometheus did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _scrapes(url: str, at_least: int) -> None:
    """Wait until every target has been scraped ``at_least`` more times."""
    query = "min(count_over_time(up[1h]))"

    def count() -> float:
        r = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
        result = r["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    target = count() + at_least
    deadline = time.monotonic() + 30
    while count() < target:
        assert time.monotonic() < deadline, "Prometheus stopped scraping"
        time.sleep(0.3)


def _send(url: str, x: np.ndarray, rounds: int) -> None:
    with requests.Session() as s:
        for _ in range(rounds):
            for start in range(0, len(x), 32):
                r = s.post(
                    f"{url}/v1/models/digits:predict",
                    json={"instances": x[start : start + 32].tolist()},
                    timeout=10,
                )
                assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def setup(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require(
        "prometheus",
        PROMETHEUS is not None,
        "install Debian's prometheus: scripts/infra.sh monitoring",
    )
    tmp = tmp_path_factory.mktemp("monitor")
    root = tmp / "repo"
    shutil.copytree(prepared, root, symlinks=True)
    _set_state(root)
    model_dir = _model_dir(prepared, tmp_path_factory.mktemp("model"), with_profile=True)
    test = pd.read_parquet(prepared / "data/digits/test.parquet")
    columns = [f"pixel_{i}" for i in range(64)]
    reference = test[columns].to_numpy(dtype=float)
    drifted = test[columns].copy()
    drifted[SHIFTED] = (drifted[SHIFTED] + SHIFT).clip(upper=16.0)
    with (
        _server(model_dir, RELEASES["staging"].release_id) as staging,
        _server(model_dir, RELEASES["production"].release_id) as production,
        _prometheus(tmp, {"staging": staging, "production": production}) as prom,
    ):
        _scrapes(prom, 2)  # the counters' zero values are in before any traffic
        for _ in range(3):  # traffic spread over several scrapes
            _send(staging, reference, 1)
            _send(production, drifted.to_numpy(dtype=float), 1)
            _scrapes(prom, 1)
        _scrapes(prom, 2)  # and the last counts are in
        yield Setup(root, prom, staging)


def _monitor(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(root)
    return main(["monitor", *args])


def _verdicts(markdown: str) -> dict[str, str]:
    """The signals table's verdict column, by signal."""
    cells = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("| ")
    ]
    return {row[0]: row[3] for row in cells if len(row) == 4}


def _png_ok(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()  # the whole stream decodes: not a truncated or empty file
    with Image.open(path) as image:
        assert image.size[0] >= 300
        assert image.size[1] >= 200


def test_drifted_traffic_is_reported_per_feature_and_fails_on_drift(
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    out = setup.root / "artifacts" / "monitor" / "production"
    # Outside the repository, as a runner's $GITHUB_OUTPUT is, and already holding a line of an
    # earlier step: the verdict is appended.
    verdict = tmp_path / "runner" / "output"
    verdict.parent.mkdir()
    verdict.write_text("earlier=1\n")
    code = _monitor(
        setup.root,
        monkeypatch,
        "--env",
        "production",
        "--since",
        WINDOW,
        "--prometheus",
        setup.prometheus,
        "--fail-on",
        "drift",
        "--verdict",
        str(verdict),
    )
    stdout = capsys.readouterr().out
    assert code == 1, stdout
    assert (out / "monitor.md").read_text() == stdout
    assert verdict.read_text() == 'earlier=1\nMONITOR_FAILING=true\nMONITOR_MODELS=["digits"]\n'
    assert "**Failing: drift**" in stdout
    assert f"## digits: {RELEASES['production'].release_id} (blue)" in stdout
    assert _verdicts(stdout)["input drift: share of drifted features"] == "**ALERT**"
    drifted_line = next(line for line in stdout.splitlines() if line.startswith("Drifted"))
    for feature in SHIFTED:
        assert f"`{feature}`" in drifted_line, drifted_line
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(
        f"digits-{k}.png" for k in ("dashboard", "drift", "predictions", "timeline")
    )
    for name in pngs:
        _png_ok(out / name)
        assert f"]({name})" in stdout
    if os.environ.get("UPDATE_DOCS_PICTURE") == "1":
        shutil.copy(out / "digits-dashboard.png", DOCS_PICTURE)


def test_reference_traffic_reports_no_drift(
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    verdict = tmp_path / "monitor.env"
    code = _monitor(
        setup.root,
        monkeypatch,
        "--env",
        "staging",
        "--since",
        WINDOW,
        "--prometheus",
        setup.prometheus,
        "--fail-on",
        "drift",
        "errors",
        "--out",
        "artifacts/monitor/reference",
        "--verdict",
        str(verdict),
    )
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert verdict.read_text() == "MONITOR_FAILING=false\nMONITOR_MODELS=[]\n"
    assert "No condition it was asked to fail on holds (drift, errors)." in stdout
    verdicts = _verdicts(stdout)
    for signal in (
        "input drift: share of drifted features",
        "prediction drift: PSI vs reference",
        "error ratio (5xx)",
    ):
        assert verdicts[signal] == "ok", stdout
    # The instances of the window were counted: the verdict was judged, not skipped for lack
    # of data.
    assert "drift is not judged" not in stdout
    assert (setup.root / "artifacts/monitor/reference/monitor.md").read_text() == stdout


def test_an_unreachable_or_foreign_prometheus_exits_3_and_writes_nothing(
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    verdict = tmp_path / "output"
    for url, said in (
        (f"http://127.0.0.1:{free_port()}", "is unreachable"),
        # The model server answers /api/v1/query with a 404: an HTTP error, not an answer.
        (setup.server, "answered /api/v1/query with HTTP 404"),
    ):
        out = "artifacts/never/report"
        code = _monitor(
            setup.root,
            monkeypatch,
            "--env",
            "production",
            "--prometheus",
            url,
            "--out",
            out,
            "--verdict",
            str(verdict),
        )
        err = capsys.readouterr().err
        assert code == 3, err
        assert not verdict.exists()  # no verdict: the next job must not act on a guess
        assert said in err
        assert "hint: check that Prometheus answers" in err
        # Not the report, nor a staging folder beside it, nor even its parent.
        assert not (setup.root / "artifacts/never").exists()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout nothing writes to (every bad input is refused before anything is)."""
    return copy_repo(tmp_path_factory.mktemp("plain") / "repo")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--env", "production", "--since", "1 hour"], "is not a Prometheus duration"),
        (["--env", "production", "--since", "5s"], "the window must be from 10 s"),
        (["--env", "production", "--prometheus", "ftp://127.0.0.1:9090"], "http(s)"),
        (["--env", "production", "--prometheus", "http://u:p@127.0.0.1:9090"], "credentials"),
        (["--env", "production", "--prometheus", "http://127.0.0.1:9090/?q=1"], "query"),
        (["--env", "production", "--prometheus", "http://127.0.0.1:99999"], "not a URL"),
        (["--env", "nowhere"], "nowhere"),
        (["--env", "production", "--model", "../digits"], "../digits"),
        (["--env", "production", "--out", "../outside"], "outside"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    plain: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    said: str,
) -> None:
    monkeypatch.setenv("MLOPS_PROMETHEUS_URL", "http://127.0.0.1:9")
    verdict = tmp_path / "output"
    code = _monitor(plain, monkeypatch, *args, "--verdict", str(verdict))
    err = capsys.readouterr().err
    assert code == 2, err
    assert said in err
    assert not verdict.exists()
    assert not (plain / "artifacts").exists()
    assert not (plain.parent / "outside").exists()


def test_no_prometheus_url_is_a_usage_error(
    plain: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLOPS_PROMETHEUS_URL", raising=False)
    assert _monitor(plain, monkeypatch, "--env", "production") == 2
    assert "MLOPS_PROMETHEUS_URL" in capsys.readouterr().err


def test_the_readme_shows_the_dashboard_picture_monitor_made() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Monitoring and automatic rollback", 1)[1].split("\n## ", 1)[0]
    assert f"]({DOCS_PICTURE.relative_to(ROOT)})" in section
    _png_ok(DOCS_PICTURE)


def test_a_query_prometheus_refuses_is_an_infrastructure_error(setup: Setup) -> None:
    """Prometheus' own "status": "error" answer (here a query it cannot parse) is exit 3 with
    its message, not a crash and not an empty report."""
    prom = Prometheus(setup.prometheus)
    try:
        with pytest.raises(InfraError, match=r"HTTP 400: bad_data: .*parse error") as info:
            prom.query("sum(", time.time())
        assert info.value.exit_code == 3
        # And a window with no series of a release is an empty answer, not an error.
        assert prom.query('up{release="no-such-release"}', time.time()) == []
        assert prom.query_range("vector(1)", time.time() - 10, time.time(), 5)[0].points
    finally:
        prom.close()


def test_a_release_prometheus_has_no_series_of_is_reported_as_no_data(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = setup.root.parent / "other"
    shutil.copytree(setup.root, root, symlinks=True, ignore=shutil.ignore_patterns(".infra"))
    path = root / "manifests/environments/production.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["models"]["digits"]["blue"]["release_id"] = "digits-000000000099"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    code = _monitor(
        root, monkeypatch, "--env", "production", "--since", WINDOW,
        "--prometheus", setup.prometheus, "--fail-on", "drift",
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Prometheus has no series of digits digits-000000000099" in out.err
    assert _verdicts(out.out)["input drift: share of drifted features"] == "no data"
