"""report: the pipeline's verdict as Markdown, for a PR/MR comment and the job summary.

The same text on GitHub, GitLab and a terminal. ``--post`` creates the comment, or updates it
in place (found by a hidden marker), so a pull request never collects a second one.

It imports only what pyproject's `report` extra installs (pydantic, PyYAML, Jinja2, requests),
never a stage that needs numpy, pandas, TensorFlow or GX: the CI job that posts the comment
holds `pull-requests: write` and installs nothing else (tests/integration/test_ci_security.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import evidence
from pipelines.adapters import scm
from pipelines.adapters.artifacts import append_text, sha256_file, write_text
from pipelines.config import Workspace, load_gitops, model_names, read_settings
from pipelines.core import report
from pipelines.core.changes import affected_models
from pipelines.errors import ConfigError
from pipelines.evidence import Blessing, Record, TrainingRecord, ValidationSummary

# (label, path under artifacts/<model>/) of what a reviewer opens.
ARTIFACTS = (
    ("Data Docs", "validate/data_docs/index.html"),
    ("confusion matrix", "evaluate/confusion_matrix.png"),
    ("residual plot", "evaluate/residuals.png"),
    ("training curves", "train/curves.png"),
    ("blessing", "gate/blessing.json"),
    ("tuning history", "tune/history.png"),
    ("tuning importances", "tune/importances.png"),
)


@dataclass(frozen=True)
class Report:
    """The report's Markdown, and where it was posted (empty when it was not)."""

    markdown: str
    posted: str = ""


def marker(model: str) -> str:
    """The hidden marker by which a model's report comment is found and updated."""
    return f"<!-- mlops-report:{model} -->"


def _optional(ws: Workspace, kind: type[Record]) -> dict[str, Any] | None:
    """The record as the report renders it (plain JSON), or None where the stage has not run."""
    path = evidence.at(ws, kind)
    return evidence.load(path, kind).model_dump(mode="json") if path.is_file() else None


def _tuned(ws: Workspace, blessing: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """tuned.yaml, when the gated model was trained with it (its training record says so)."""
    if ws.tuned is None or blessing is None:
        return None
    # Without train's record (a report job given only the gate's artifacts), the committed
    # tuned.yaml is what train read in this commit.
    trained = _optional(ws, TrainingRecord)
    if trained is not None and trained.get("tuned_study") != ws.tuned.study:
        return None
    return ws.tuned.model_dump(mode="json", exclude_none=True)


def links(ws: Workspace, artifacts_url: str) -> list[tuple[str, str]]:
    """A base ending in '/' (GitLab's artifact browser) links each file; any other URL (the
    GitHub artifact download) is one link to the whole bundle."""
    present = [(label, rel) for label, rel in ARTIFACTS if (ws.artifacts("") / rel).is_file()]
    if not artifacts_url:
        return []
    if artifacts_url.endswith("/"):
        return [(label, f"{artifacts_url}artifacts/{ws.name}/{rel}") for label, rel in present]
    return [("all artifacts (Data Docs, plots, blessing)", artifacts_url)]


def pr_number() -> int | None:
    """The pull or merge request this CI run is for, if any."""
    env = read_settings()
    for value in (env.pr_number, env.ci_merge_request_iid):  # MLOPS_PR_NUMBER first
        if value.isdigit():
            return int(value)
    m = re.fullmatch(r"refs/pull/(\d+)/merge", env.github_ref)
    return int(m.group(1)) if m else None


def context() -> str:
    """A line naming the commit and CI run the report describes."""
    env = read_settings()
    sha = env.commit_sha  # GITHUB_SHA, else CI_COMMIT_SHA
    run = ""
    if env.github_run_id:
        run = f"{env.github_server_url}/{env.github_repository}/actions/runs/{env.github_run_id}"
    run = run or env.ci_pipeline_url
    return " · ".join(x for x in (f"commit {sha[:12]}" if sha else "", run) if x) or "local run"


def run(
    ws: Workspace,
    *,
    post: bool = False,
    summary_file: Path | None = None,
    metrics_file: Path | None = None,
    artifacts_url: str = "",
) -> Report:
    """Build the report from the artifacts on disk; optionally post it and write the job summary."""
    summary = _optional(ws, ValidationSummary)
    on_disk = _optional(ws, Blessing)
    model = evidence.candidate_artifact(ws)
    blessing = report.current_blessing(
        summary, on_disk, sha256_file(model) if model.is_file() else None
    )
    if summary is None and on_disk is None:
        raise ConfigError(
            "nothing to report: no validation summary and no blessing",
            hint="run the pipeline first (mlops run --until gate)",
        )
    text = report.ci_report(
        model=ws.name,
        summary=summary,
        blessing=blessing,
        links=links(ws, artifacts_url),
        context=context(),
        tuned=_tuned(ws, blessing),
    )
    if summary_file is not None:
        append_text(summary_file, text)
    if metrics_file is not None and blessing is not None:
        write_text(metrics_file, report.gitlab_metrics(blessing))
    posted = ""
    number = pr_number()
    if post and number is not None:
        posted = _post(ws, number, text)
    elif post:
        posted = "not posted: this run belongs to no pull/merge request"
    return Report(text, posted)


def _post(ws: Workspace, number: int, text: str) -> str:
    """Create or update the model's comment when the change touches the model; the provider's
    own list of the request's files decides, not the CI job that ran the change's code."""
    provider = scm.provider(load_gitops(ws.root), ws.root)
    files = provider.changed_files(number)
    if files is not None and ws.name not in affected_models(files, model_names(ws.root)):
        return (
            f"not posted: the change touches neither models/{ws.name}/ nor any file outside "
            "models/, so it cannot change this model's verdict"
        )
    return "comment at " + provider.upsert_comment(number, marker(ws.name), text)
