"""PNG plots for humans: training curves, the confusion matrix or residuals, and the monitor's
live signals (matplotlib, Agg backend, imported on first use)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display in CI or containers
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    import io

    from pipelines.adapters.artifacts import write_bytes

    buf = io.BytesIO()
    # Fixed metadata keeps the PNG byte-identical across re-runs of identical inputs.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    write_bytes(path, buf.getvalue())


def training_curves(history: dict[str, list[float]], path: Path) -> None:
    """Plot loss and accuracy (a regressor's: MAE) per epoch, training against validation, to a
    file."""
    plt = _pyplot()
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    score = "accuracy" if "accuracy" in history else "mae"
    for key, ax in (("loss", loss_ax), (score, score_ax)):
        ax.plot(history[key], label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(history[f"val_{key}"], label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)


def optimization_history(
    trials: Sequence[tuple[int, float, str]], metric: str, maximize: bool, path: Path
) -> None:
    """Each finished trial's value (number, value, state), and the best so far, to a file."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        points = [(n, v) for n, v, s in trials if s == state]
        if points:
            ax.scatter(*zip(*points, strict=True), marker=marker, label=state.lower())
    complete = sorted((n, v) for n, v, s in trials if s == "COMPLETE")
    best: list[float] = []
    for _, v in complete:
        best.append(v if not best else (max if maximize else min)(best[-1], v))
    if complete:
        ax.step([n for n, _ in complete], best, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("optimisation history (pruned: value at the epoch it stopped)")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def importances(values: dict[str, float], path: Path) -> None:
    """Parameter importances (fANOVA), as horizontal bars, to a file."""
    plt = _pyplot()
    names = sorted(values, key=values.__getitem__)
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * max(len(names), 1)))
    ax.barh(names, [values[n] for n in names])
    ax.set_xlabel("importance (share of the metric's variance)")
    ax.set_title("hyper-parameter importances")
    fig.tight_layout()
    _save(fig, path)


def residuals(actual: Sequence[float], predicted: Sequence[float], path: Path) -> None:
    """A regressor's test predictions: predicted against actual (on the diagonal when right),
    and the residual (predicted - actual) against the predicted value, where a trend or a funnel
    shows a bias the headline metrics average away."""
    plt = _pyplot()
    fig, (fit_ax, res_ax) = plt.subplots(1, 2, figsize=(9, 3.8))
    fit_ax.scatter(actual, predicted, s=8, alpha=0.6)
    low, high = min(min(actual), min(predicted)), max(max(actual), max(predicted))
    fit_ax.plot([low, high], [low, high], color="grey", linewidth=1, label="predicted = actual")
    fit_ax.set_xlabel("actual")
    fit_ax.set_ylabel("predicted")
    fit_ax.set_title("predicted against actual")
    fit_ax.legend()
    res_ax.scatter(
        predicted, [p - a for a, p in zip(actual, predicted, strict=True)], s=8, alpha=0.6
    )
    res_ax.axhline(0.0, color="grey", linewidth=1)
    res_ax.set_xlabel("predicted")
    res_ax.set_ylabel("residual (predicted - actual)")
    res_ax.set_title("residuals")
    fig.tight_layout()
    _save(fig, path)


def confusion_matrix(matrix: list[list[int]], classes: list[int], path: Path) -> None:
    """Plot a confusion matrix with counts in the cells to a file."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(
                j,
                i,
                str(value),
                ha="center",
                va="center",
                color="white" if value > peak / 2 else "black",
                fontsize=8,
            )
    ax.set_title("confusion matrix (test split, serving artifact)")
    fig.tight_layout()
    _save(fig, path)


# --- mlops monitor ---------------------------------------------------------------------------
# One release's live signals: each panel is drawn by one helper, saved alone and, together, as
# the release's dashboard picture.

Points = list[tuple[float, float]]


@dataclass(frozen=True)
class MonitorPlot:
    """What the monitor's plots show for one release."""

    title: str
    effects: dict[str, float]  # feature -> effect size over the window
    effect_threshold: float | None
    live_shares: dict[str, float]  # class -> share over the window
    reference_shares: dict[str, float]
    # Over time: name -> points, and the limit drawn with it (None: no line).
    anomaly_rate: Points
    anomaly_limit: float | None
    error_ratio: Points
    max_error_ratio: float
    latency_p99_s: Points
    slo_s: float


def _effects_panel(ax: Any, p: MonitorPlot) -> None:
    features = list(p.effects)
    values = [p.effects[f] for f in features]
    limit = p.effect_threshold
    colors = ["tab:red" if limit is not None and v > limit else "tab:blue" for v in values]
    ax.bar(range(len(features)), values, color=colors)
    if limit is not None:
        ax.axhline(limit, color="black", linestyle="--", label=f"calibrated threshold {limit:.3g}")
        ax.legend(loc="upper right", fontsize=8)
    step = max(1, len(features) // 16)  # at most ~16 labels stay readable
    ax.set_xticks(range(0, len(features), step), features[::step], rotation=60, fontsize=7)
    ax.set_ylabel("|mean - reference| / stddev")
    ax.set_title("input drift: effect size per feature")


def _shares_panel(ax: Any, p: MonitorPlot) -> None:
    classes = sorted(
        set(p.live_shares) | set(p.reference_shares),
        key=lambda c: (int(c), "") if c.isdigit() else (1 << 30, c),
    )
    x = list(range(len(classes)))
    ax.bar(
        [i - 0.2 for i in x],
        [p.reference_shares.get(c, 0.0) for c in classes],
        0.4,
        label="reference",
    )
    ax.bar([i + 0.2 for i in x], [p.live_shares.get(c, 0.0) for c in classes], 0.4, label="live")
    ax.set_xticks(x, classes)
    ax.set_xlabel("class")
    ax.set_ylabel("share of predictions")
    ax.set_title("prediction distribution vs reference")
    ax.legend(fontsize=8)


def _timeline_panel(
    ax: Any, points: Points, limit: float | None, title: str, scale: float, unit: str
) -> None:
    import datetime as dt

    if points:
        start = points[0][0]
        # Seconds for a short window (a test's), minutes otherwise.
        per, unit_name = (60, "minutes") if points[-1][0] - start > 120 else (1, "seconds")
        ax.plot([(t - start) / per for t, _ in points], [v * scale for _, v in points])
        ax.set_xlabel(
            f"{unit_name} since "
            + dt.datetime.fromtimestamp(start, dt.UTC).strftime("%H:%M:%S UTC")
        )
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    if limit is not None:
        ax.axhline(limit * scale, color="black", linestyle="--", label="limit")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title(title)


def _timelines(axes: Sequence[Any], p: MonitorPlot) -> None:
    _timeline_panel(axes[0], p.anomaly_rate, p.anomaly_limit, "anomaly rate", 100, "%")
    _timeline_panel(axes[1], p.error_ratio, p.max_error_ratio, "error ratio (5xx)", 100, "%")
    _timeline_panel(axes[2], p.latency_p99_s, p.slo_s, "p99 latency", 1000, "ms")


def monitor_plots(p: MonitorPlot, folder: Path, stem: str) -> list[str]:
    """Write the release's PNGs into ``folder``; their file names, dashboard first."""
    plt = _pyplot()
    names = [f"{stem}-{kind}.png" for kind in ("dashboard", "drift", "predictions", "timeline")]

    fig = plt.figure(figsize=(13, 8))
    grid = fig.add_gridspec(2, 3)
    _effects_panel(fig.add_subplot(grid[0, :2]), p)
    _shares_panel(fig.add_subplot(grid[0, 2]), p)
    _timelines([fig.add_subplot(grid[1, i]) for i in range(3)], p)
    fig.suptitle(p.title)
    fig.tight_layout()
    _save(fig, folder / names[0])

    fig, ax = plt.subplots(figsize=(10, 4))
    _effects_panel(ax, p)
    fig.tight_layout()
    _save(fig, folder / names[1])

    fig, ax = plt.subplots(figsize=(6, 4))
    _shares_panel(ax, p)
    fig.tight_layout()
    _save(fig, folder / names[2])

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    _timelines(axes, p)
    fig.tight_layout()
    _save(fig, folder / names[3])
    return names
