"""The monitoring loop on real components, shared by tests/integration/test_monitoring_loop.py
and bench/monitoring_loop.py: a released image running in Docker, Debian's Prometheus scraping
it with the rendered rules (short windows), Debian's Alertmanager routing ``action=rollback``
alerts to a real ``mlops guard serve`` subprocess, and the local GitOps remote it commits to.

Nothing here is product code: it stands in for the cluster (Deployment, PodMonitor,
AlertmanagerConfig) the rendered objects describe. Every process and container started here is
stopped by the context manager that started it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
import yaml

from pipelines.config import FeatureSpec, load_gitops, load_model
from pipelines.core import monitoring
from pipelines.serving import contract
from pipelines.serving.contract import Env
from tests.util import free_port

ENV = "staging"
MODEL = "digits"
TOKEN = "loop-webhook-token"
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
PROMTOOL = "/usr/bin/promtool"
SCRAPE = "1s"
# The loop's windows: seconds where production has minutes. The window holds ~10 scrapes; the
# error and drift alerts wait a few evaluations; ModelDown waits longer than ModelErrorRate so
# that a server answering 503 is rolled back for its errors (both alerts may roll back).
WINDOW = monitoring.RuleSettings(
    window="10s",
    drift_for="5s",
    drift_keep_firing_for="30s",
    anomaly_for="5s",
    latency_for="5s",
    errors_for="5s",
    down_for="60s",
    keep_firing_for="30s",
    evaluation_interval="1s",
)
# Alertmanager timings: production's rendered AlertmanagerConfig waits 10s (groupWait).
GROUP_WAIT = "1s"
BATCH = 4  # instances per predict request: ~80 a second, so a 10 s window holds ~800 (>= 200)
TIMEOUT = 10.0  # seconds, every HTTP call
TOOLS_IMAGE = "registry.example/mlops-tools@sha256:" + "ab" * 32


# The loop's latency SLO. Not model.yaml's 25 ms: on a 2-core machine shared with the rest of a
# test run, a few requests in a 10 s window wait for the CPU, and p99 over ~200 requests is
# then their wait, not the server's. The latency alert is not this loop's subject (it is not a
# rollback alert); tests/integration/test_alert_rules.py makes it fire, stay quiet and resolve.
LATENCY_P99_MS = 250.0


def settings(root: Path) -> monitoring.RuleSettings:
    """The committed rules' settings with the loop's short windows (and latency SLO)."""
    assert load_model(root, MODEL).model.monitoring.latency_p99_ms < LATENCY_P99_MS
    return dataclasses.replace(WINDOW, latency_p99_ms=LATENCY_P99_MS)


def names(root: Path) -> monitoring.Names:
    """The recorded series the loop's rules write."""
    return monitoring.names(settings(root))


def seconds(duration: str) -> float:
    """A Prometheus duration the loop uses ("20s", "1m") in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]]


def git(repo: Path, *args: str) -> str:
    """A git command's stdout; raises on failure."""
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def remote(root: Path) -> Path:
    """The local provider's bare GitOps remote."""
    return root / ".infra" / "gitops.git"


def committed(root: Path, rel: str) -> Any:
    """A YAML file as the GitOps remote's main branch holds it."""
    return yaml.safe_load(git(remote(root), "show", f"main:{rel}"))


def head(root: Path) -> str:
    """The GitOps remote's main commit."""
    return git(remote(root), "rev-parse", "main").strip()


def trailers(root: Path, rev: str = "main") -> dict[str, str]:
    """A commit's subject (as ``subject``) and trailers."""
    out = git(
        remote(root),
        "log",
        "-1",
        "--format=%s%x00%(trailers:only,unfold)",
        rev,
    )
    subject, _, block = out.partition("\0")
    fields = {"subject": subject.strip()}
    for line in block.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            fields[key] = value
    return fields


def scope(root: Path) -> monitoring.Scope:
    """The staging scope, from the environment state committed in the GitOps repository."""
    state = committed(root, f"manifests/environments/{ENV}.yaml")
    return monitoring.Scope(state["environment"], state["namespace"], MODEL, state["auto_rollback"])


def rule_file(root: Path, out: Path) -> Path:
    """The rule groups of the committed PrometheusRule, rebuilt with the loop's windows, checked
    by promtool. The committed object is first compared with what the same code renders for
    production settings, so the loop runs the rules staging actually has."""
    sc = scope(root)
    slo = load_model(root, MODEL).model.monitoring.latency_p99_ms
    rendered = committed(root, f"manifests/rendered/{ENV}/prometheusrule-{MODEL}.yaml")
    expected = monitoring.prometheus_rule(sc, monitoring.settings_for(slo))
    # Rendering adds gitops.yaml's selector labels for the Prometheus Operator (not the rules').
    expected["metadata"]["labels"].update(load_gitops(root).monitoring.selector_labels)
    assert rendered == expected, "the committed PrometheusRule is not what monitoring.py renders"
    spec = monitoring.prometheus_rule(sc, settings(root))["spec"]
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(out)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    return out


def prometheus_config(rules: Path, targets: Path, alertmanager: str) -> dict[str, Any]:
    """Scrape the file-discovered targets every second and send alerts to Alertmanager.

    ``honor_labels`` as the rendered PodMonitor sets it; the targets file carries the labels
    the PodMonitor's relabelings give (namespace, and model/release/color from the pod)."""
    return {
        "global": {
            "scrape_interval": SCRAPE,
            "scrape_timeout": SCRAPE,
            "evaluation_interval": WINDOW.evaluation_interval,
        },
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": f"{MODEL}-pods",
                "honor_labels": True,
                "metrics_path": contract.METRICS_PATH,
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": SCRAPE}],
            }
        ],
    }


def alertmanager_config(guard_url: str, token_file: Path) -> dict[str, Any]:
    """Route ``action=rollback`` alerts of the environment to the guard with its bearer token,
    as the rendered AlertmanagerConfig does, with shorter waits; everything else to nobody."""
    return {
        "route": {
            "receiver": "nobody",
            "routes": [
                {
                    "receiver": "mlops-guard",
                    "matchers": ['action="rollback"', f'environment="{ENV}"'],
                    "group_by": ["alertname", "environment", "model", "release"],
                    "group_wait": GROUP_WAIT,
                    "group_interval": "1s",
                    "repeat_interval": "5s",
                }
            ],
        },
        "receivers": [
            {"name": "nobody"},
            {
                "name": "mlops-guard",
                "webhook_configs": [
                    {
                        "url": f"{guard_url}/alerts",
                        "send_resolved": False,
                        "max_alerts": 100,
                        "http_config": {
                            # From a file, as the cluster mounts the Secret: the token is in no
                            # configuration file.
                            "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
                        },
                    }
                ],
            },
        ],
    }


@dataclass
class Process:
    """A subprocess with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        """The last lines of its output."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def process(name: str, argv: list[str], workdir: Path, **kwargs: Any) -> Iterator[Process]:
    """Start a process; terminate it (then kill it) on the way out."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    proc = Process(name, popen, log)
    try:
        yield proc
    finally:
        popen.terminate()
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=10)


def wait_for(
    what: str, ok: Callable[[], bool], timeout: float, diagnose: Callable[[], str] = str
) -> float:
    """Poll ``ok`` until it holds; the seconds it took. On time-out, fail with ``diagnose()``."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(requests.RequestException):
            if ok():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{diagnose()}")
        time.sleep(0.2)


def answers(url: str) -> Callable[[], bool]:
    """A probe: whether a GET of ``url`` answers 2xx."""
    return lambda: requests.get(url, timeout=TIMEOUT).ok


def get_json(url: str) -> Any:
    r = requests.get(url, timeout=TIMEOUT)
    r.raise_for_status()
    return r.json()


@dataclass
class Loop:
    """The running loop: Prometheus, Alertmanager, the guard, and the served target."""

    root: Path
    workdir: Path
    prometheus: Process
    prometheus_url: str
    alertmanager: Process
    alertmanager_url: str
    guard: Process
    targets: Path

    def alerts(self, state: str | None = "firing") -> list[dict[str, Any]]:
        """Prometheus' alerts (all, or those in one state)."""
        found: list[dict[str, Any]] = get_json(f"{self.prometheus_url}/api/v1/alerts")["data"][
            "alerts"
        ]
        return [a for a in found if state is None or a["state"] == state]

    def firing(self, name: str, release: str) -> bool:
        """Whether Prometheus fires ``name`` for ``release``."""
        return any(
            a["labels"]["alertname"] == name and a["labels"].get("release") == release
            for a in self.alerts()
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        r = requests.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=TIMEOUT
        )
        r.raise_for_status()
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result

    def diagnose(self) -> str:
        """What each component says: for assertion messages."""
        parts = []
        for what, fetch in (
            ("Prometheus alerts", lambda: self.alerts(None)),
            ("Alertmanager alerts", lambda: get_json(f"{self.alertmanager_url}/api/v2/alerts")),
        ):
            try:
                body = json.dumps(fetch(), indent=1)[-4000:]
            except (requests.RequestException, ValueError) as exc:
                body = f"unavailable: {exc}"
            parts.append(f"--- {what}:\n{body}")
        parts.append(f"--- guard log (tail):\n{self.guard.tail()}")
        parts.append(f"--- Prometheus log (tail):\n{self.prometheus.tail(10)}")
        parts.append(f"--- Alertmanager log (tail):\n{self.alertmanager.tail(10)}")
        return "\n".join(parts)

    def scrape(self, url: str, color: str) -> None:
        """Point the scrape at one server, with the target labels the committed PodMonitor
        gives the color's pod in a cluster: its relabelings applied to the pod template's
        labels, plus the namespace and pod the operator adds."""
        labels = target_labels(self.root, color)
        tmp = self.targets.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [url.removeprefix("http://")], "labels": labels}]))
        tmp.replace(self.targets)  # atomic: Prometheus never reads half a file

    @contextlib.contextmanager
    def serve(self, color: str, broken_model: Path | None = None) -> Iterator[tuple[str, str]]:
        """The color's server (see ``container``), scraped once before this yields (url,
        release); no longer a target afterwards, as a deleted pod leaves its PodMonitor."""
        with container(self.root, color, broken_model=broken_model) as (url, release):
            self.scrape(url, color)
            try:
                self.wait_scraped(release)
                yield url, release
            finally:
                self.targets.write_text("[]")

    def wait_scraped(self, release: str, timeout: float = 30) -> None:
        """Until Prometheus has scraped the release's server at least once."""
        wait_for(
            f"Prometheus to scrape {release}",
            lambda: bool(self.query(f'up{{release="{release}"}} == 1')),
            timeout,
            self.diagnose,
        )


def target_labels(root: Path, color: str) -> dict[str, str]:
    """The labels a scrape of the color's pod carries, from the committed PodMonitor and
    Deployment (the ``__meta_kubernetes_pod_label_*`` relabelings, as Prometheus applies them)."""
    rendered = f"manifests/rendered/{ENV}"
    monitor = committed(root, f"{rendered}/podmonitor-{MODEL}.yaml")
    pod = committed(root, f"{rendered}/deployment-{MODEL}-{color}.yaml")["spec"]["template"]
    meta = {f"__meta_kubernetes_pod_label_{k}": v for k, v in pod["metadata"]["labels"].items()}
    labels = {"namespace": monitor["metadata"]["namespace"], "pod": f"{MODEL}-{color}-loop"}
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        for rule in endpoint.get("relabelings", []):
            labels[rule["targetLabel"]] = ";".join(meta.get(k, "") for k in rule["sourceLabels"])
    return labels


@contextlib.contextmanager
def running_loop(root: Path, workdir: Path) -> Iterator[Loop]:
    """Alertmanager, then Prometheus (so its first notifications are not dropped), then the
    guard in ``root``; all stopped afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    token_file = workdir / "guard-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    guard_port, am_port, prom_port = free_port(), free_port(), free_port()
    guard_url = f"http://127.0.0.1:{guard_port}"
    am_cfg = workdir / "alertmanager.yml"
    am_cfg.write_text(yaml.safe_dump(alertmanager_config(guard_url, token_file)))
    rules = rule_file(root, workdir / "rules.yml")
    targets = workdir / "targets.json"
    targets.write_text("[]")
    prom_cfg = workdir / "prometheus.yml"
    prom_cfg.write_text(yaml.safe_dump(prometheus_config(rules, targets, f"127.0.0.1:{am_port}")))
    am_argv = [
        ALERTMANAGER,
        f"--config.file={am_cfg}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
    ]
    prom_argv = [
        PROMETHEUS,
        f"--config.file={prom_cfg}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        "--rules.alert.resend-delay=1s",
    ]
    guard_env = {**os.environ, "MLOPS_GUARD_TOKEN": TOKEN}
    guard_argv = [sys.executable, "-m", "pipelines.cli", "guard", "serve"]
    guard_argv += ["--port", str(guard_port), "--max-rollbacks", "5"]
    am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
    with (
        process("alertmanager", am_argv, workdir) as am,
        process("guard", guard_argv, workdir, cwd=root, env=guard_env) as guard,
    ):
        for name, probe, proc in (
            ("Alertmanager", f"{am_url}/-/ready", am),
            ("the guard", f"{guard_url}/healthz", guard),
        ):
            wait_for(f"{name} to answer", answers(probe), 60, proc.tail)
        with process("prometheus", prom_argv, workdir) as prom:
            wait_for("Prometheus to answer", answers(f"{prom_url}/-/ready"), 60, prom.tail)
            yield Loop(root, workdir, prom, prom_url, am, am_url, guard, targets)


@contextlib.contextmanager
def container(
    root: Path, color: str, *, broken_model: Path | None = None, timeout: float = 60
) -> Iterator[tuple[str, str]]:
    """The image the GitOps repository deploys for ``color``, run as its rendered Deployment
    runs it (its env, non-root, read-only, no capabilities), on a free host port: (url,
    release). ``broken_model``: a file mounted over the model, as a bad volume or a corrupt
    layer would leave it; the server then never becomes ready."""
    import docker

    deployment = committed(root, f"manifests/rendered/{ENV}/deployment-{MODEL}-{color}.yaml")
    spec = deployment["spec"]["template"]["spec"]["containers"][0]
    port = free_port()
    env = {e["name"]: e["value"] for e in spec["env"]}
    # Host networking (the one network here): a free port instead of the pod's own 8080.
    env |= {Env.PORT: str(port), Env.HOST: "127.0.0.1"}
    volumes = {}
    if broken_model is not None:
        volumes[str(broken_model)] = {"bind": f"{contract.MODEL_DIR}/model.tflite", "mode": "ro"}
    client = docker.from_env(timeout=60)
    box = None
    try:
        box = client.containers.run(
            spec["image"],
            detach=True,
            environment=env,
            network_mode="host",
            read_only=True,
            user=contract.USER,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            volumes=volumes,
            labels={"io.mlops.purpose": "mlops-loop-test"},
        )
        url = f"http://127.0.0.1:{port}"
        probe = contract.HEALTH_PATH if broken_model else contract.READY_PATH
        wait_for(
            f"the {color} server to answer {probe}",
            lambda: requests.get(url + probe, timeout=TIMEOUT).ok,
            timeout,
            lambda: logs(box),
        )
        yield url, env[Env.RELEASE_ID]
    finally:
        if box is not None:
            with contextlib.suppress(docker.errors.APIError):
                box.remove(force=True)
        client.close()


def logs(box: Any) -> str:
    """A container's last log lines."""
    text: str = box.logs(tail=20).decode(errors="replace")
    return text


def test_rows(root: Path) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The test split's feature rows: reference-like traffic."""
    import pandas as pd

    ws = load_model(root, MODEL)
    df = pd.read_parquet(ws.split_path("test"))
    return df[ws.model.data.feature_columns].to_numpy(dtype=np.float64)


def drifted(
    root: Path, rows: np.ndarray[Any, np.dtype[np.float64]], shift: float = 4.0
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The same rows with the outer columns of the image brightened, clipped to the valid
    range: a scanner that leaves a frame. Those pixels are almost always 0 in the reference, so
    their means move many standard deviations while the digit in the middle is untouched."""
    features = load_model(root, MODEL).model.data.features
    assert isinstance(features, FeatureSpec)  # digits: the image shorthand
    h, w = features.image_shape
    out = rows.copy().reshape(-1, h, w)
    out[:, :, [0, w - 1]] += shift
    return np.clip(out, features.min, features.max).reshape(rows.shape)


class Traffic:
    """Predict requests in a background thread, BATCH instances each, from the rows set last."""

    def __init__(self, url: str, rows: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.url = f"{url}{contract.predict_path(MODEL)}"
        self.rows = rows
        self.codes: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        with requests.Session() as session:
            while not self._stop.is_set():
                rows = self.rows
                batch = rows[np.arange(i, i + BATCH) % len(rows)]
                i = (i + BATCH) % len(rows)
                try:
                    r = session.post(self.url, json={"instances": batch.tolist()}, timeout=TIMEOUT)
                    self.codes[r.status_code] = self.codes.get(r.status_code, 0) + 1
                except requests.RequestException:
                    self.codes[0] = self.codes.get(0, 0) + 1
                self._stop.wait(0.05)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT + 5)


def quiet(_: str) -> None:
    """A progress callback that prints nothing."""


def allow_automatic_rollback(root: Path) -> None:
    """staging's ``auto_rollback: direct``, set before the first release seeds the remote.

    Rendering then requires the guard's tools image by digest; the loop runs the guard as a
    local process, so a pinned name stands in for it."""
    gitops = root / "manifests" / "gitops.yaml"
    gitops.write_text(gitops.read_text().replace('  image: ""', f"  image: {TOOLS_IMAGE}", 1))
    path = root / "manifests" / "environments" / f"{ENV}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["auto_rollback"] = "direct"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def release_candidate(root: Path) -> str:
    """Gate, package (build and push the image), verify (run it by digest) and release the
    trained candidate to staging, as the pipeline does: the release id now serving."""
    from pipelines.stages import gate, package, release, verify

    ws = load_model(root, MODEL)
    gate.run(ws)
    packaged = package.run(ws, progress=quiet)
    verify.run(ws, progress=quiet)
    landed = release.run(ws, ENV, progress=quiet)
    assert landed.commit is not None, landed.detail
    return packaged.release_id


def stage(root: Path, epochs: Sequence[int]) -> list[str]:
    """Allow automatic rollbacks in staging, then release the trained candidate and one more
    per further entry of ``epochs`` (retrained for that many): the release ids, oldest first.
    The caller sets BASE_IMAGE, as for ``mlops package``."""
    allow_automatic_rollback(root)
    ids = [release_candidate(root)]
    for n in epochs[1:]:
        retrain(root, n)
        ids.append(release_candidate(root))
    return ids


def active(root: Path) -> tuple[str, str, str | None]:
    """(active color, its release, the other color's release) in the committed staging state."""
    slot = committed(root, f"manifests/environments/{ENV}.yaml")["models"][MODEL]
    color = slot["active"]
    other = "green" if color == "blue" else "blue"
    idle = slot.get(other)
    return color, slot[color]["release_id"], idle["release_id"] if idle else None


def wait_full_window(lp: Loop) -> None:
    """Until the window holds the instances the drift thresholds were calibrated for: before
    that, the drift alerts do not judge."""
    window = load_model(lp.root, MODEL).model.monitoring.window_instances
    recorded = names(lp.root).instances
    wait_for(
        f"a window of at least {window} instances",
        lambda: any(float(r["value"][1]) >= window for r in lp.query(recorded)),
        60,
        lp.diagnose,
    )


def drift_to_rollback(lp: Loop) -> float:
    """Serve the active release with reference-like traffic until a full window, then shift the
    traffic: the seconds from the shift to the guard's rollback commit on the remote."""
    root = lp.root
    color, bad, _ = active(root)
    before = head(root)
    rows = test_rows(root)
    with lp.serve(color) as (url, _), Traffic(url, rows) as traffic:
        wait_full_window(lp)
        traffic.rows = drifted(root, rows)
        start = time.monotonic()
        wait_for(
            "ModelInputDrift to fire", lambda: lp.firing("ModelInputDrift", bad), 90, lp.diagnose
        )
        wait_for("the guard's rollback commit", lambda: head(root) != before, 60, lp.diagnose)
        return time.monotonic() - start


def retrain(root: Path, epochs: int) -> None:
    """Train and evaluate again for another number of epochs: another model, so another
    release. (More epochs rather than another seed: a seed can miss a per-class gate.)"""
    from pipelines.stages import evaluate, train
    from tests.conftest import edit_model_yaml

    edit_model_yaml(root, {"training.epochs": epochs})
    ws = load_model(root, MODEL)
    train.run(ws)
    evaluate.run(ws)


def status(root: Path) -> str:
    """``mlops status --no-live`` as the CLI prints it, in ``root``."""
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "status", "--no-live"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def available() -> tuple[bool, str]:
    """Whether Debian's Prometheus, Alertmanager and promtool are installed."""
    missing = [p for p in (PROMETHEUS, ALERTMANAGER, PROMTOOL) if not shutil.which(p)]
    if missing:
        return False, f"missing {', '.join(missing)}: run scripts/infra.sh monitoring"
    return True, ""
