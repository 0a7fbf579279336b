"""What ``mlops monitor`` decides from the live signals of one release, and the Markdown it
writes. Pure: numbers in (already fetched from Prometheus), verdicts and text out.

The verdicts are the alerts' conditions (core/monitoring.py) applied once, over the report's
window, without their ``for`` durations: a report says what the window shows, an alert says it
has shown it for long enough.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipelines.core.monitoring import RuleSettings
from pipelines.core.report import table

# What --fail-on accepts: one per family of alerts.
CONDITIONS = ("drift", "anomalies", "errors", "latency")
# Prometheus' duration syntax (units in descending order, each at most once), as --since takes
# it; the milliseconds unit is left out: no report window is that short.
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1)
# A window must hold a few scrapes for rate() to mean anything, and Prometheus keeps 15 days of
# data by default; beyond that a query only reads what is left.
MIN_WINDOW_S = 10
MAX_WINDOW_S = 90 * 86400
# The points of each plotted series; the plots' rate window is the step times this.
PLOT_POINTS = 60
PLOT_RATE_STEPS = 6
# Rows of the per-feature table: every drifted feature, then the largest others up to this.
FEATURE_ROWS = 15


def parse_window(text: str) -> int:
    """Seconds in a Prometheus duration such as ``1h`` or ``1h30m``; ValueError otherwise."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a Prometheus duration such as 30m, 1h or 1d12h")
    seconds = sum(int(v) * u for v, u in zip(match.groups(), _UNIT_SECONDS, strict=True) if v)
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise ValueError(
            f"{text!r} is {seconds} s; the window must be from {MIN_WINDOW_S} s to "
            f"{MAX_WINDOW_S // 86400} days"
        )
    return seconds


def prometheus_url(text: str) -> str:
    """The Prometheus base URL, refused unless it is plain http(s)://host[:port][/path]: no
    credentials (they would be logged), query or fragment (the API paths are appended)."""
    try:
        url = urllib.parse.urlsplit(text)
        port = url.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a URL: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"{text!r} is not an http(s):// URL with a host")
    if url.username is not None or url.password is not None:
        raise ValueError("the Prometheus URL must not carry credentials")
    if url.query or url.fragment or any(c.isspace() for c in text):
        raise ValueError(f"{text!r} has a query, fragment or blank; give the base URL only")
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"{url.scheme}://{host}{f':{port}' if port else ''}{url.path.rstrip('/')}"


@dataclass(frozen=True)
class Signals:
    """One release's live signals over the window; None where Prometheus has no data."""

    model: str
    release: str
    color: str
    instances: float | None = None
    window_instances: float | None = None
    effects: Mapping[str, float] = field(default_factory=dict)  # feature -> effect size
    effect_threshold: float | None = None
    drifted_fraction: float | None = None
    drifted_fraction_threshold: float | None = None
    class_shares: Mapping[str, float] = field(default_factory=dict)
    reference_shares: Mapping[str, float] = field(default_factory=dict)
    predicted: str = "class"  # what class_shares are shares of: a regressor's value bins
    psi: float | None = None
    psi_threshold: float | None = None
    anomaly_rate: float | None = None
    anomaly_limit: float | None = None
    latency_p99_s: float | None = None
    requests: float | None = None
    error_ratio: float | None = None
    availability: float | None = None


def _num(x: float | None) -> float | None:
    """NaN (0/0 in PromQL: a window without traffic) counts as no data."""
    return None if x is None or math.isnan(x) else x


def _over(value: float | None, limit: float | None) -> bool:
    v, lim = _num(value), _num(limit)
    return v is not None and lim is not None and v > lim


def drifted_features(s: Signals) -> list[str]:
    """The features whose effect size is past the calibrated threshold, largest first."""
    over = [f for f, e in s.effects.items() if _over(e, s.effect_threshold)]
    return sorted(over, key=lambda f: (-s.effects[f], f))


def enough_instances(s: Signals) -> bool:
    """The thresholds were calibrated on windows this large; a smaller one is too noisy."""
    n, need = _num(s.instances), _num(s.window_instances)
    return n is not None and need is not None and n >= need


def input_drift(s: Signals) -> bool:
    """ModelInputDrift's condition: more features drifted than reference windows give."""
    return enough_instances(s) and _over(s.drifted_fraction, s.drifted_fraction_threshold)


def prediction_drift(s: Signals) -> bool:
    """ModelPredictionDrift's condition: the class distribution moved (PSI)."""
    return enough_instances(s) and _over(s.psi, s.psi_threshold)


def anomalies(s: Signals) -> bool:
    """ModelInputAnomalies' condition: more anomalous instances than the reference allows."""
    return _over(s.anomaly_rate, s.anomaly_limit)


def errors(s: Signals, rules: RuleSettings) -> bool:
    """ModelErrorRate's condition: too many 5xx among enough predict requests."""
    n = _num(s.requests)
    return n is not None and n >= rules.min_requests and _over(s.error_ratio, rules.max_error_ratio)


def latency(s: Signals, rules: RuleSettings) -> bool:
    """ModelLatencyHigh's condition: p99 over the SLO."""
    return _over(s.latency_p99_s, rules.latency_p99_ms / 1000)


def conditions(s: Signals, rules: RuleSettings) -> dict[str, bool]:
    """Which --fail-on conditions hold, by name (CONDITIONS)."""
    return {
        "drift": input_drift(s) or prediction_drift(s),
        "anomalies": anomalies(s),
        "errors": errors(s, rules),
        "latency": latency(s, rules),
    }


def failing(found: Sequence[Mapping[str, bool]], fail_on: Sequence[str]) -> list[str]:
    """The requested conditions that hold for any release, in CONDITIONS' order."""
    return [c for c in CONDITIONS if c in fail_on and any(f[c] for f in found)]


def failing_models(found: Mapping[str, Mapping[str, bool]], fail_on: Sequence[str]) -> list[str]:
    """The models (by name: an environment serves one active release of each) for which a
    requested condition holds, sorted: the ones the scheduled loop retrains."""
    return sorted(m for m, f in found.items() if any(f[c] for c in CONDITIONS if c in fail_on))


def ci_verdict(failed: Sequence[str], models: Sequence[str]) -> str:
    """The lines ``--verdict`` appends for the next CI job (a GitHub output, a GitLab dotenv
    report): whether a condition holds, and for which models, as a compact JSON array that
    GitHub's fromJSON reads as the retrain matrix and check-inputs matches exactly."""
    names = json.dumps(list(models), separators=(",", ":"))
    return f"MONITOR_FAILING={'true' if failed else 'false'}\nMONITOR_MODELS={names}\n"


def _fmt(x: float | None, spec: str = ".3g") -> str:
    v = _num(x)
    return "no data" if v is None else format(v, spec)


def _pct(x: float | None) -> str:
    v = _num(x)
    return "no data" if v is None else f"{v:.2%}"


def _ms(seconds: float | None) -> str:
    v = _num(seconds)
    return "no data" if v is None else f"{v * 1000:.3g} ms"


def _verdict(holds: bool, known: bool) -> str:
    if not known:
        return "no data"
    return "**ALERT**" if holds else "ok"


def _drift_note(s: Signals) -> str:
    if enough_instances(s):
        return ""
    return (
        f"Only {_fmt(s.instances, '.0f')} instances in the window; the drift thresholds were "
        f"calibrated on {_fmt(s.window_instances, '.0f')}, so drift is not judged."
    )


def release_section(s: Signals, rules: RuleSettings, plots: Sequence[str] = ()) -> str:
    """One release's Markdown: the signals against their limits, the drifted features, the
    class shares against the reference, and links to its plots."""
    slo = rules.latency_p99_ms / 1000
    drifted = drifted_features(s)
    rows = [
        [
            "input drift: share of drifted features",
            _pct(s.drifted_fraction),
            _pct(s.drifted_fraction_threshold),
            _verdict(input_drift(s), enough_instances(s)),
        ],
        [
            "prediction drift: PSI vs reference",
            _fmt(s.psi),
            _fmt(s.psi_threshold),
            _verdict(prediction_drift(s), enough_instances(s)),
        ],
        [
            "anomaly rate",
            _pct(s.anomaly_rate),
            _pct(s.anomaly_limit),
            _verdict(anomalies(s), _num(s.anomaly_rate) is not None),
        ],
        [
            "p99 latency",
            _ms(s.latency_p99_s),
            f"{slo * 1000:g} ms",
            _verdict(latency(s, rules), _num(s.latency_p99_s) is not None),
        ],
        [
            "error ratio (5xx)",
            _pct(s.error_ratio),
            f"{rules.max_error_ratio:.0%} (over {rules.min_requests} requests)",
            _verdict(errors(s, rules), _num(s.error_ratio) is not None),
        ],
        ["availability", _pct(s.availability), "-", "-"],
        ["predict requests", _fmt(s.requests, ".0f"), "-", "-"],
        ["instances", _fmt(s.instances, ".0f"), _fmt(s.window_instances, ".0f"), "-"],
    ]
    out = [
        f"## {s.model}: {s.release} ({s.color})",
        "",
        table(["signal", "value", "limit", "verdict"], rows),
    ]
    note = _drift_note(s)
    if note:
        out += ["", note]
    out += [
        "",
        f"Drifted features ({len(drifted)} of {len(s.effects)}, effect size over "
        f"{_fmt(s.effect_threshold)}): " + (", ".join(f"`{f}`" for f in drifted) or "none"),
    ]
    if s.effects:
        largest = sorted(s.effects, key=lambda f: (-_effect(s, f), f))
        shown = drifted + [f for f in largest if f not in drifted]
        out += [
            "",
            table(
                ["feature", "effect size", "drifted"],
                [
                    [f, _fmt(s.effects[f]), "yes" if f in drifted else "no"]
                    for f in shown[: max(FEATURE_ROWS, len(drifted))]
                ],
            ),
        ]
    classes = sorted(set(s.class_shares) | set(s.reference_shares), key=_class_key)
    if classes:
        out += [
            "",
            table(
                [s.predicted, "live share", "reference share"],
                [
                    [c, _pct(s.class_shares.get(c)), _pct(s.reference_shares.get(c))]
                    for c in classes
                ],
            ),
        ]
    if plots:
        out += ["", " ".join(f"![{p}]({p})" for p in plots)]
    return "\n".join(out)


def _effect(s: Signals, feature: str) -> float:
    return _num(s.effects[feature]) or 0.0


def _class_key(c: str) -> tuple[int, str]:
    """Numeric classes in numeric order (10 after 9), others after them by name."""
    return (int(c), "") if c.isdigit() else (1 << 30, c)


def report(
    *,
    environment: str,
    window: str,
    at: str,
    url: str,
    sections: Sequence[str],
    failed: Sequence[str],
    fail_on: Sequence[str],
) -> str:
    """The whole report: a header saying what was asked, then one section per release."""
    verdict = (
        f"**Failing: {', '.join(failed)}** (asked to fail on {', '.join(fail_on)})."
        if failed
        else (
            f"No condition it was asked to fail on holds ({', '.join(fail_on)})."
            if fail_on
            else "Report only (no --fail-on)."
        )
    )
    head = [
        f"# Monitoring report: {environment}",
        "",
        f"Window: the last {window} before {at}, from Prometheus at {url}. The numbers are the "
        "recording rules' expressions over this window, so they mean what the alerts mean.",
        "",
        verdict,
    ]
    body = list(sections) or ["No model has an active release in this environment."]
    return "\n\n".join(["\n".join(head), *body]) + "\n"
