"""monitor: report how the releases serving one environment behave, from Prometheus.

For the active release of each model in the environment's state (read from the GitOps
repository), it asks Prometheus' HTTP API for the signals the alerts watch, over ``--since``:
drift per feature against the calibrated threshold, the prediction distribution against the
reference (PSI and class shares), the anomaly rate against its limit, p99 latency against the
SLO, the error ratio and availability. The queries are the recording rules' own expressions
(core/monitoring.py ``queries``) with the report's window, so the report and the alerts agree.

It writes ``monitor.md`` and PNG plots into the output folder in one rename (a failed run
leaves the previous report whole, or none), and says which ``--fail-on`` conditions hold, and
for which models; with a verdict file, it appends both there for the next CI job.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.adapters import gitops, plots
from pipelines.adapters.artifacts import MONITOR_REPORT, append_text, staged_dir, write_text
from pipelines.adapters.prometheus import Prometheus, Sample
from pipelines.config import EnvironmentState, ModelSlot, load_gitops, load_model, model_names
from pipelines.core import monitor, monitoring
from pipelines.errors import ConfigError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MonitorResult:
    """The report, where it was written, the --fail-on conditions that hold and the models
    they hold for (sorted)."""

    markdown: str
    out: Path
    failed: list[str]
    plots: list[str]
    models: list[str]


def _release(
    samples: list[Sample], release: str, color: str, by: str | None = None
) -> dict[str, float]:
    """The values of one release's series, by the ``by`` label ("" when not grouped)."""
    return {
        (s.labels.get(by, "") if by else ""): s.value
        for s in samples
        if s.labels.get("release") == release and s.labels.get("color") == color
    }


def _one(samples: list[Sample], release: str, color: str) -> float | None:
    return _release(samples, release, color).get("")


def signals(
    prom: Prometheus, q: monitoring.Queries, model: str, release: str, color: str, at: float
) -> monitor.Signals:
    """One release's signals over the queries' window, at ``at``."""

    def one(expr: str) -> float | None:
        return _one(prom.query(expr, at), release, color)

    def by(expr: str, label: str) -> dict[str, float]:
        return _release(prom.query(expr, at), release, color, label)

    return monitor.Signals(
        model=model,
        release=release,
        color=color,
        instances=one(q.instances),
        window_instances=one(q.window_instances),
        effects=by(q.feature_effect, "feature"),
        effect_threshold=one(q.feature_threshold),
        drifted_fraction=one(q.drifted_fraction),
        drifted_fraction_threshold=one(q.drifted_fraction_threshold),
        class_shares=by(q.class_share, "class"),
        reference_shares=by(q.reference_class_share, "class"),
        psi=one(q.prediction_psi),
        psi_threshold=one(q.prediction_psi_threshold),
        anomaly_rate=one(q.anomaly_rate),
        anomaly_limit=one(q.anomaly_limit),
        latency_p99_s=one(q.latency_p99),
        requests=one(q.requests),
        error_ratio=one(q.error_ratio),
        availability=one(q.availability),
    )


def _timeline(
    prom: Prometheus, expr: str, release: str, color: str, start: float, end: float, step: float
) -> plots.Points:
    for series in prom.query_range(expr, start, end, step):
        if series.labels.get("release") == release and series.labels.get("color") == color:
            return [(t, v) for t, v in series.points if v == v]  # NaN: no traffic then
    return []


def _feature_key(name: str) -> tuple[str, int]:
    """pixel_2 before pixel_10: the name's text, then its trailing number."""
    head, _, tail = name.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (name, -1)


@dataclass(frozen=True)
class Observed:
    """One active release's signals, the rules they were judged by, and what its plots show."""

    signals: monitor.Signals
    rules: monitoring.RuleSettings
    plot: plots.MonitorPlot


def _observe(
    prom: Prometheus,
    root: Path,
    state: EnvironmentState,
    name: str,
    since: str,
    window_s: int,
    at: float,
    progress: Progress,
) -> Observed | None:
    """Ask Prometheus about ``name``'s active release; None when it has none."""
    env = state.environment
    slot = state.models.get(name, ModelSlot())
    record = slot.color(slot.active) if slot.active else None
    if record is None or slot.active is None:
        progress(f"monitor: {name} has no active release in {env}; skipped")
        return None
    if name not in model_names(root):
        raise ConfigError(
            f"{env} serves {name}, which has no models/{name}/model.yaml here",
            hint="run mlops monitor from the repository that builds that model",
        )
    model = load_model(root, name).model
    slo = model.monitoring.latency_p99_ms
    rules = dataclasses.replace(monitoring.settings_for(slo), window=f"{window_s}s")
    scope = monitoring.Scope(env, state.namespace, name, state.auto_rollback)
    release, color = record.release_id, slot.active
    progress(f"monitor: {name} {release} ({color}) over the last {since}")
    s = signals(prom, monitoring.queries(scope, rules), name, release, color, at)
    s = dataclasses.replace(
        s,
        effects={f: s.effects[f] for f in sorted(s.effects, key=_feature_key)},
        # A regressor's `class` label holds the bin of its predicted value (the profile's
        # prediction_edges): the report says so.
        predicted="bin of the predicted value" if model.task == "regression" else "class",
    )
    if s.availability is None and s.instances is None:
        # Not a failure (nothing says the release misbehaves), but not "fine" either.
        progress(
            f"monitor: warning: Prometheus has no series of {name} {release} "
            f"({color}) in namespace {state.namespace} over the last {since}; "
            "is it scraped (the PodMonitor) and does it get traffic?"
        )
    # The plots' points: PLOT_POINTS over the window, each a rate over a few steps.
    step = max(1, window_s // monitor.PLOT_POINTS)
    trend = monitoring.queries(
        scope, dataclasses.replace(rules, window=f"{step * monitor.PLOT_RATE_STEPS}s")
    )

    def timeline(expr: str) -> plots.Points:
        return _timeline(prom, expr, release, color, at - window_s, at, step)

    plot = plots.MonitorPlot(
        title=f"{name} {release} ({color}) in {env}, last {since}",
        effects=dict(s.effects),
        effect_threshold=s.effect_threshold,
        live_shares=dict(s.class_shares),
        reference_shares=dict(s.reference_shares),
        anomaly_rate=timeline(trend.anomaly_rate),
        anomaly_limit=s.anomaly_limit,
        error_ratio=timeline(trend.error_ratio),
        max_error_ratio=rules.max_error_ratio,
        latency_p99_s=timeline(trend.latency_p99),
        slo_s=rules.latency_p99_ms / 1000,
    )
    return Observed(s, rules, plot)


def run(
    root: Path,
    env: str,
    *,
    url: str,
    since: str,
    out: Path,
    model: str | None = None,
    fail_on: Sequence[str] = (),
    verdict_file: Path | None = None,
    at: float | None = None,
    progress: Progress = print,
) -> MonitorResult:
    """Query Prometheus for ``env``'s active releases and write the report into ``out``; then,
    with ``verdict_file``, append the verdict lines (core/monitor.py ``ci_verdict``) to it. A
    refusal or an unreachable Prometheus raises before either is written."""
    try:
        window_s = monitor.parse_window(since)
        base = monitor.prometheus_url(url)
    except ValueError as exc:
        raise ConfigError(
            str(exc), hint="--since takes a duration like 1h; --prometheus an http(s) URL"
        ) from exc
    unknown = sorted(set(fail_on) - set(monitor.CONDITIONS))
    if unknown:
        raise ConfigError(
            f"--fail-on {', '.join(unknown)} is not a condition",
            hint=f"use {', '.join(monitor.CONDITIONS)}",
        )
    at = time.time() if at is None else at
    cfg = load_gitops(root)
    with gitops.checkout(cfg, root) as repo:
        state = repo.read_state(env)
    wanted = [model] if model else sorted(state.models)
    # Every query first, then every file: a Prometheus that fails half-way leaves nothing
    # behind, not even an empty folder.
    prom = Prometheus(base)
    try:
        observed = [
            _observe(prom, root, state, name, since, window_s, at, progress) for name in wanted
        ]
    finally:
        prom.close()
    releases = [o for o in observed if o is not None]
    found = {o.signals.model: monitor.conditions(o.signals, o.rules) for o in releases}
    failed = monitor.failing(list(found.values()), fail_on)
    models = monitor.failing_models(found, fail_on)
    sections: list[str] = []
    pictures: list[str] = []
    with staged_dir(out) as stage:
        for o in releases:
            names = plots.monitor_plots(o.plot, stage, o.signals.model)
            pictures += names
            sections.append(monitor.release_section(o.signals, o.rules, names))
        markdown = monitor.report(
            environment=env,
            window=since,
            at=dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            url=base,
            sections=sections,
            failed=failed,
            fail_on=fail_on,
        )
        write_text(stage / MONITOR_REPORT, markdown)
    if verdict_file is not None:
        append_text(verdict_file, monitor.ci_verdict(failed, models))
    return MonitorResult(markdown, out, failed, pictures, models)
