"""Text for people: terminal tables, the promotion PR body and the CI report comment.

Pure functions of the evidence the stages wrote (validation summary, metrics, blessing, infra
blessing, release record), so GitHub, GitLab and the local provider show the same text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.core.render import Diff

METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
# A regressor's, in the target's units (R² unitless); lower is better for the errors.
REGRESSION_METRICS = ("rmse", "mae", "r2")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table (readable as plain text too), columns padded to their widest cell."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}%"


def _pp(x: float) -> str:
    return f"{x * 100:+.2f} pp"


def _cell(text: object) -> str:
    """Table cells: no pipes or newlines from data can break the table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def metrics_table(blessing: Mapping[str, Any]) -> str:
    """Candidate vs baseline (production), with the paired delta, its 95% CI and the test: a
    classifier's accuracy (McNemar), a regressor's mean absolute error (Wilcoxon)."""
    cand = blessing["candidate"]
    base = (blessing.get("baseline") or {}).get("metrics") or {}
    comp = blessing.get("comparison")
    rows = []
    for m in METRICS:
        if m not in cand:
            continue
        b = base.get(m)
        delta = "n/a" if b is None else _pp(cand[m] - b)
        ci = test = ""
        if m == "accuracy" and comp:
            ci = f"[{_pp(comp['ci_low'])}, {_pp(comp['ci_high'])}]"
            test = f"McNemar p={comp['p_value']:.3g} (b={comp['b']}, c={comp['c']})"
        rows.append([m, _pct(cand[m]), _pct(b), delta, ci, test])
    for m in REGRESSION_METRICS:
        if m not in cand:
            continue
        b = base.get(m)
        delta = "n/a" if b is None else f"{cand[m] - b:+.4g}"
        ci = test = ""
        if m == "mae" and comp:
            ci = f"[{comp['ci_low']:+.4g}, {comp['ci_high']:+.4g}]"
            test = f"Wilcoxon signed-rank p={comp['p_value']:.3g} (n={comp['n']})"
        rows.append([m, f"{cand[m]:.4g}", "n/a" if b is None else f"{b:.4g}", delta, ci, test])
    text = table(["metric", "candidate", "production", "delta", "95% CI", "paired test"], rows)
    if not comp:
        text += "\n\nNo production model to compare with: the change rule was not applied."
    origin = baseline_origin(blessing.get("baseline") or {})
    if origin:
        text += f"\n\n{origin}"
    return text


def baseline_origin(baseline: Mapping[str, Any]) -> str:
    """Which release the baseline was and, for an exported bundle, how fresh: a pull request's
    gate compares against what the default branch last exported, not production live."""
    if not baseline.get("release_id"):
        return ""
    text = (
        f"Baseline: `{_cell(baseline.get('environment', '?'))}` release "
        f"`{_cell(baseline['release_id'])}`"
    )
    if baseline.get("exported"):
        commit = str(baseline.get("gitops_commit") or "")[:12] or "none"
        text += (
            f", from the bundle exported {_cell(baseline['exported'])} "
            f"(GitOps commit `{_cell(commit)}`)"
        )
    return text + "."


def per_class_table(blessing: Mapping[str, Any], limit: int = 50) -> str:
    """A Markdown table of per-class recall, candidate against baseline, capped at limit rows."""
    cand = blessing["candidate"].get("per_class_recall") or {}
    base = ((blessing.get("baseline") or {}).get("metrics") or {}).get("per_class_recall") or {}
    rows = []
    for cls in sorted(cand, key=lambda c: (len(c), c))[:limit]:
        b = base.get(cls)
        rows.append([cls, _pct(cand[cls]), _pct(b), "n/a" if b is None else _pp(cand[cls] - b)])
    return table(["class", "recall (candidate)", "recall (production)", "delta"], rows)


def slices_table(slices: Sequence[Mapping[str, Any]]) -> str:
    """gate.slices' verdicts, one row per slice; a slice too small to judge says so."""
    rows = [
        [
            _cell(s["name"]),
            str(s["n"]),
            f"{s['candidate']:.4g}",
            "n/a" if s.get("baseline") is None else f"{s['baseline']:.4g}",
            ("pass" if s["passed"] else "FAIL") if s["judged"] else "too small to judge",
        ]
        for s in slices
    ]
    return table(["slice", "rows", "candidate", "production", "verdict"], rows)


def _folded(summary: str, body: str) -> list[str]:
    return [f"<details><summary>{summary}</summary>", "", body, "", "</details>", ""]


def _model_tables(blessing: Mapping[str, Any]) -> list[str]:
    """The metrics table, then per-class recall (a classifier's) and the slices folded away:
    the PR body's and the CI comment's lines under their own heading, so both show the model
    the same way."""
    lines = [metrics_table(blessing), ""]
    if blessing["candidate"].get("per_class_recall"):
        lines += _folded("Per-class recall", per_class_table(blessing))
    slices = blessing.get("slices") or []
    if slices:
        score = "accuracy" if "accuracy" in blessing["candidate"] else "MAE"
        failed = sum(1 for s in slices if s["judged"] and not s["passed"])
        lines += _folded(f"Slices ({score}): {len(slices)}, {failed} failed", slices_table(slices))
    return lines


def rules_list(rules: Sequence[Mapping[str, Any]]) -> str:
    """The gate rules as a Markdown list, passed or failed, with their reasons."""
    return "\n".join(
        f"- {'✅' if r['passed'] else '❌'} **{r['rule']}**: {_cell(r['reason'])}" for r in rules
    )


def validation_summary(summary: Mapping[str, Any]) -> str:
    """One line on the data validation: verdict, expectations met, and rows per split."""
    rows = ", ".join(f"{k} {v}" for k, v in (summary.get("rows") or {}).items())
    verdict = "passed" if summary.get("success") else "FAILED"
    total = int(summary.get("evaluated_expectations", 0))
    met = total - int(summary.get("failed_expectations", 0))
    text = (
        f"{verdict}: {met} of {total} expectations met ({rows}); "
        f"data md5 `{(summary.get('provenance') or {}).get('data_md5', '?')}`"
    )
    failures = summary.get("failures") or []
    if failures:
        text += "\n" + "\n".join(f"  - {_cell(f)}" for f in failures[:20])
    return text


def diff_summary(d: Diff) -> str:
    """The rendered-object changes as Markdown, one line per kind of change."""
    if d.empty:
        return "No rendered object changes."
    lines: list[str] = []
    for label, items in (("added", d.added), ("changed", d.changed), ("removed", d.removed)):
        if items:
            lines.append(f"- {label} ({len(items)}): " + ", ".join(f"`{i}`" for i in items))
    return "\n".join(lines)


def promotion_body(
    *,
    env: str,
    source_env: str,
    release: Mapping[str, Any],
    previous: str | None,
    summary: Mapping[str, Any],
    blessing: Mapping[str, Any],
    infra: Mapping[str, Any],
    diff: Diff,
    sbom: str,
    monitor: str | None = None,
    tuned: Mapping[str, Any] | None = None,
) -> str:
    """The promotion PR body: everything a reviewer needs to approve or refuse. ``monitor``:
    the target environment's `mlops monitor` report, when the run that retrained made one;
    ``tuned``: tuned.yaml, when the model was trained with tuned values."""
    latency = infra.get("latency_ms") or {}
    return (
        "\n".join(
            [
                f"Promotes **{release['release_id']}** from {source_env} to **{env}**"
                + (f" (replacing {previous})." if previous else " (the first release there)."),
                "Merging this pull request is the deployment; the GitOps controller syncs it.",
                "",
                "## Data validation",
                validation_summary(summary),
                "",
                "## Model: candidate vs production (paired, same test examples)",
                *_model_tables(blessing),
                "## Gate",
                rules_list(blessing.get("rules") or []),
                "",
                *tuning_section(tuned),
                "## Image (verified by running it)",
                f"- image: `{release['image']}`",
                f"- model artifact: `{release.get('model_artifact') or 'n/a'}` "
                f"(sha256 `{release['model_sha256']}`)",
                f"- SBOM: {sbom}",
                f"- latency over HTTP: p50 {latency.get('p50', 0):.2f} ms, "
                f"p99 {latency.get('p99', 0):.2f} ms",
                rules_list(infra.get("rules") or []),
                "",
                f"## Rendered changes in rendered/{env}/",
                diff_summary(diff),
                "",
                f"Source commit `{release['source_commit']}`, data `{release['data_md5']}`.",
                *monitor_section(env, monitor),
            ]
        )
        + "\n"
    )


# A Markdown image reference: its file stays in the monitor's artifacts, not in the PR.
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")


def tuning_section(tuned: Mapping[str, Any] | None, heading: str = "## Tuning") -> list[str]:
    """The trained model's tuned values (models/<name>/tuned.yaml): the study, its trials, the
    best trial's validation score, what it set and which values mattered. Empty when the
    model was trained with model.yaml's values."""
    if not tuned:
        return []
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted((tuned.get("states") or {}).items()))
    values = tuned.get("training") or {}
    rows = [[k, f"`{v}`"] for k, v in values.items() if k != "params"]
    rows += [[f"params.{k}", f"`{v}`"] for k, v in (values.get("params") or {}).items()]
    importances = tuned.get("importances") or {}
    lines = [
        heading,
        "",
        f"Trained with the values of Optuna study `{tuned['study']}` "
        f"({states or str(tuned['finished_trials']) + ' finished'} trials): best trial "
        f"#{tuned['best_trial']}, {tuned['metric']} {tuned['value']:.4f} on the validation "
        "split (never the test split). The gate above judged the resulting model.",
        "",
        table(["tuned value", "set to"], rows),
    ]
    if importances:
        ranked = sorted(importances.items(), key=lambda kv: -kv[1])
        lines += ["", "Importance (fANOVA): " + ", ".join(f"{k} {v:.0%}" for k, v in ranked)]
    return [*lines, ""]


def monitor_section(env: str, markdown: str | None) -> list[str]:
    """The monitor report as lines of the promotion body: its headings moved two levels down
    under one of ours, its image links (files of the CI job's artifacts) dropped."""
    if not markdown:
        return []
    lines: list[str] = []
    for line in markdown.strip().splitlines():
        if line.startswith("#"):
            line = "##" + line
        line = _IMAGE.sub("", line).rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:  # a dropped image line at the end
        lines.pop()
    return [
        "",
        f"## Monitoring report on {env} (why this retraining ran)",
        "The scheduled `mlops monitor` run found this; its plots are in the job's artifacts.",
        "",
        *lines,
    ]


def current_blessing(
    summary: Mapping[str, Any] | None, blessing: Mapping[str, Any] | None, model_sha256: str | None
) -> Mapping[str, Any] | None:
    """The blessing, if it judged the data this run validated and the model this run trained
    (``model_sha256``: of the candidate on disk, None if there is none); else None. A run that
    stopped early leaves an earlier run's blessing on disk (a restored cache, say), and a
    report that showed it would call this run's data or model "blessed"."""
    if blessing is None or summary is None or not summary.get("success"):
        return None
    fingerprint = summary.get("data_fingerprint")
    judged = (blessing.get("provenance") or {}).get("data_fingerprint")
    gated = (blessing.get("candidate") or {}).get("model_sha256")
    if fingerprint is None or fingerprint != judged or model_sha256 is None:
        return None
    return blessing if gated == model_sha256 else None


def ci_report(
    *,
    model: str,
    summary: Mapping[str, Any] | None,
    blessing: Mapping[str, Any] | None,
    links: Sequence[tuple[str, str]],
    context: str,
    tuned: Mapping[str, Any] | None = None,
) -> str:
    """The PR/MR comment and job summary of a pipeline run: the same text on every system.
    ``tuned``: tuned.yaml, when the model was trained with tuned values."""
    if summary is not None and not summary.get("success"):
        headline = "❌ data validation failed: nothing was trained or gated"
    elif blessing is None:
        headline = "⚠️ the gate did not run"
    elif blessing.get("blessed"):
        headline = "✅ blessed: this model may ship"
    else:
        headline = "❌ refused by the gate"
    parts = [f"### mlops · {model}: {headline}", ""]
    if summary is not None:
        parts += ["**Data validation**: " + validation_summary(summary), ""]
    if blessing is not None:
        parts += [
            "**Candidate vs production** (paired, same test examples)",
            "",
            *_model_tables(blessing),
            "**Gate**",
            "",
            rules_list(blessing.get("rules") or []),
            "",
            *tuning_section(tuned, "**Tuning**"),
        ]
    if links:
        parts += ["**Artifacts**: " + " · ".join(f"[{name}]({url})" for name, url in links), ""]
    parts.append(f"<sub>{_cell(context)}</sub>")
    return "\n".join(parts) + "\n"


def gitlab_metrics(blessing: Mapping[str, Any]) -> str:
    """GitLab's metrics report: one `name value` line per headline number."""
    cand = blessing["candidate"]
    lines = [f"{m} {cand[m]:.6f}" for m in METRICS if m in cand]
    lines += [f"{m} {cand[m]:.6g}" for m in REGRESSION_METRICS if m in cand]
    comp = blessing.get("comparison")
    if comp and "b" in comp:  # a classifier's PairedComparison
        lines += [f"accuracy_delta {comp['delta']:.6f}", f"mcnemar_p {comp['p_value']:.6g}"]
    elif comp:  # a regressor's PairedErrors
        lines += [f"abs_error_delta {comp['delta']:.6g}", f"wilcoxon_p {comp['p_value']:.6g}"]
    lines.append(f"blessed {1 if blessing.get('blessed') else 0}")
    return "\n".join(lines) + "\n"
