"""The ``mlops`` command: parse arguments, load configuration, call a stage, map errors to exit
codes (0 ok, 1 a check said no, 2 usage or configuration, 3 infrastructure unavailable)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from pipelines import __version__, evidence
from pipelines.config import (
    DEFAULT_MODEL,
    Workspace,
    find_root,
    json_schema,
    load_model,
    read_settings,
    reveal,
)
from pipelines.core.dvcgraph import PIPELINE
from pipelines.core.monitor import CONDITIONS as MONITOR_CONDITIONS
from pipelines.errors import ConfigError, MlopsError
from pipelines.pipeline import STAGES

EPILOG = """\
exit codes: 0 success; 1 a check said no (invalid data, failed gate, failed verification,
policy violation); 2 usage or configuration error; 3 infrastructure unavailable (docker,
registry, git remote, SCM API, Prometheus); 70 an internal error, a bug in mlops (--debug, or
MLOPS_DEBUG=1, prints its traceback). Every failure says what to do next.
"""
# sysexits' EX_SOFTWARE: a bug must not read as 1, "a check said no".
INTERNAL_ERROR = 70


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="GitOps CI/CD for ML models: validate the data, train, gate, "
        "package and verify the image, and release it as rendered Kubernetes YAML committed "
        "to git.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback of an internal error (also MLOPS_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, model: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if model:
            p.add_argument(
                "--model",
                default=DEFAULT_MODEL,
                help="folder name under models/ (default: %(default)s)",
            )
        return p

    def baseline(p: argparse.ArgumentParser) -> None:
        default = read_settings().baseline
        p.add_argument(
            "--baseline",
            type=Path,
            default=Path(default) if default else None,
            metavar="TFLITE|DIR",
            help="what to compare against: a TFLite file, or a bundle folder from `mlops "
            "baseline export` (its record is checked against the model file; an empty "
            "folder means no baseline, and on_missing_baseline decides). Default: "
            "MLOPS_BASELINE if set, else the model production serves, fetched from the "
            "registry by digest (none before the first production release)",
        )

    p = add(
        "config",
        "Validate models/<model>/model.yaml and print the resolved configuration (every "
        "default filled in), or print its schema. A missing required key (task, data.source, "
        "data.label, data.features, deploy.image_repository) is refused, each one named.",
    )
    p.add_argument("--schema", action="store_true", help="print the JSON schema of model.yaml")
    stage_parsers = {name: add(name, stage.help) for name, stage in STAGES.items()}
    baseline(stage_parsers["gate"])
    p = stage_parsers["train"]
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="train across N local worker processes over loopback "
        "(MultiWorkerMirroredStrategy, tf_keras); 1 trains in this process, "
        "byte-reproducibly (default: training.distribution.workers in model.yaml)",
    )
    # One worker of a cluster: started by `--workers N` (TF_CONFIG set) or by a pod of the
    # rendered training Job (its cluster from the Job's name, Service, port and
    # JOB_COMPLETION_INDEX). Not for people to type.
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--job-service", help=argparse.SUPPRESS)
    p.add_argument("--job-port", type=int, default=0, help=argparse.SUPPRESS)
    stage_parsers["release"].add_argument(
        "--env", default="staging", help="environment (default: %(default)s)"
    )
    p = stage_parsers["tune"]
    p.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="finished (completed or pruned) trials the study must hold; a re-run resumes it "
        "(default: tuning.trials in model.yaml)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop starting trials after S seconds, per worker (default: tuning.timeout_s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="local worker processes sharing the study, one thread each; at most the CPUs "
        "this process may use (default: %(default)s)",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="the study's database: sqlite:///PATH inside the repository, or "
        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB for workers on many machines, "
        "better given as $MLOPS_TUNE_STORAGE, the default, since arguments show in `ps` "
        "(`scripts/infra.sh postgres` prints a local one). Without either: sqlite under "
        "artifacts/<model>/tune/",
    )
    p = stage_parsers["promote"]
    p.add_argument(
        "--to",
        default="production",
        dest="to_env",
        help="target environment (default: %(default)s)",
    )
    p.add_argument(
        "--from",
        default="staging",
        dest="from_env",
        help="source environment (default: %(default)s)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="merge the open promotion request for --to (the local approval)",
    )
    p = add(
        "rollback",
        "Flip an environment back to its previous release (still deployed): "
        "a commit with a Rollback-Of trailer, or a pull request in pr mode.",
    )
    p.add_argument("--env", required=True, help="environment to roll back")
    p.add_argument(
        "--merge",
        action="store_true",
        help="merge the open rollback request for --env (local provider only)",
    )
    p.add_argument(
        "--reactivate",
        action="store_true",
        help="roll back even when that makes the release an earlier rollback took "
        "out of service serve again (refused without this flag)",
    )
    p = add(
        "status",
        "Show what runs in each environment (from git) and, with a kube "
        "context, whether the cluster agrees.",
    )
    p.add_argument("--env", help="one environment (default: all)")
    p.add_argument("--no-live", action="store_true", help="do not contact a cluster")
    p = add(
        "capacity",
        "Pack the environment's peak (every model with both colors at their HPA maximum, "
        "plus the Jobs and the guard, as rendered) onto the node pool declared in its state: "
        "print the placement and the minimum number of nodes; exit 1 when it does not fit.",
        model=False,
    )
    p.add_argument("--env", required=True, help="environment (a manifests/environments/ file)")
    p = add(
        "report",
        "Print the pipeline's verdict as Markdown (metrics vs production, gate "
        "reasons, artifact links); post it as the one PR/MR comment, updated in place.",
    )
    p.add_argument(
        "--post",
        action="store_true",
        help="create or update the PR/MR comment when the run belongs to one "
        "(number from MLOPS_PR_NUMBER, CI_MERGE_REQUEST_IID or GITHUB_REF; provider "
        "from manifests/gitops.yaml or MLOPS_SCM_PROVIDER)",
    )
    p.add_argument(
        "--summary",
        type=Path,
        metavar="FILE",
        help="also append it to FILE (e.g. $GITHUB_STEP_SUMMARY)",
    )
    p.add_argument(
        "--metrics",
        type=Path,
        metavar="FILE",
        help="write GitLab's metrics report (name value lines) to FILE",
    )
    p.add_argument(
        "--artifacts-url",
        default=read_settings().artifacts_url,
        help="where the CI stored artifacts/ (default: $MLOPS_ARTIFACTS_URL)",
    )
    add(
        "registry-login",
        "Store REGISTRY's credentials (REGISTRY_USERNAME and REGISTRY_PASSWORD, "
        "or GitLab's CI_REGISTRY_USER and CI_REGISTRY_PASSWORD) in the Docker config, for the "
        "image push and the model artifact.",
        model=False,
    )
    p = add(
        "data",
        "Data sources kept in the team's DVC remote (S3, GCS, Azure, SSH, a folder), not in "
        "git; a model.yaml names one as `source: {kind: file, path: PATH, dvc: true}`.",
        model=False,
    )
    data_actions = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    track_help = (
        "record PATH with DVC (writes PATH.dvc to commit, and a .gitignore entry) and push it "
        "to the DVC remote; run it again after the file changes. Credentials: DVC's own "
        "(.dvc/config.local, or AWS_*/GOOGLE_APPLICATION_CREDENTIALS/AZURE_* variables)"
    )
    track = data_actions.add_parser("track", help=track_help, description=track_help)
    track.add_argument("path", metavar="PATH", help="a CSV or Parquet file inside the repository")
    track.add_argument(
        "--remote", metavar="NAME", help="a DVC remote of .dvc/config (default: the default one)"
    )
    pull_help = (
        "CI: pull the model's data source from the DVC remote when model.yaml marks it "
        "`dvc: true` (nothing to do otherwise), with the read-only credential in "
        "MLOPS_DVC_CREDENTIALS (base64 of a .dvc/config.local) if set; ingest then finds it"
    )
    pull = data_actions.add_parser("pull", help=pull_help, description=pull_help)
    pull.add_argument(
        "--model", default=DEFAULT_MODEL, help="folder name under models/ (default: %(default)s)"
    )
    p = add(
        "render",
        "Render manifests/environments/*.yaml into manifests/rendered/ and the "
        "controller objects; refuse on schema or policy violations.",
        model=False,
    )
    p.add_argument("--env", help="render (or check) one environment only")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff when the committed files are stale",
    )
    p = add(
        "configure",
        "Personalise a fork of the template: set repo_url (what Argo CD or Flux fetches) and "
        "registry in manifests/gitops.yaml, the owners of production's paths in CODEOWNERS, "
        "and re-render manifests/. Idempotent; a bad value writes nothing (exit 2). Until it "
        "has run, a release to any GitOps remote but the embedded default is refused.",
        model=False,
    )
    p.add_argument(
        "--repo-url",
        required=True,
        metavar="URL",
        help="the GitOps repository the cluster fetches: https://host/owner/repo.git or "
        "ssh://git@host/owner/repo.git (no password or token)",
    )
    p.add_argument(
        "--registry",
        required=True,
        metavar="REG",
        help="the OCI registry for images and model artifacts, host[:port][/namespace], e.g. "
        "ghcr.io/acme (REGISTRY still overrides it)",
    )
    p.add_argument(
        "--owners",
        required=True,
        nargs="+",
        metavar="@OWNER",
        help="who must approve changes to production (CODEOWNERS): @org/team or @user, one "
        "or more (GitLab: @group/subgroup too)",
    )
    p.add_argument(
        "--provider",
        choices=("github", "gitlab"),
        help="where the fork is hosted, which decides the CODEOWNERS file (.github/ or "
        ".gitlab/); default: from --repo-url's host (github.com, gitlab.com), else required",
    )
    p = add(
        "init",
        "Scaffold models/NAME/ from a table: profile it, write model.yaml (the inferred feature "
        "schema: types, ranges widened by a stated margin, vocabularies, nulls; the label's "
        "classes; the task), an expectation suite, a baseline network and split settings, and "
        "add the model's stages to dvc.yaml. Refuses, naming each column, a table it cannot "
        "use (exit 1), and a hand-edited folder without --force (exit 2).",
        model=False,
    )
    p.add_argument("name", metavar="NAME", help="the model's name: a DNS label, e.g. churn")
    p.add_argument(
        "--data",
        required=True,
        metavar="PATH",
        help="the table (CSV or Parquet), relative to the repository root",
    )
    p.add_argument("--label", required=True, metavar="COLUMN", help="the column to predict")
    p.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="auto (default): classification for a non-numeric label or one of at most 20 "
        "integers, else regression",
    )
    p.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="COLUMN",
        help="columns the model must not use (identifiers, dates, free text)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace models/NAME/ even if it was edited"
    )
    p.add_argument(
        "--dvc",
        nargs="?",
        const="",
        default=None,
        metavar="REMOTE",
        help="record the table with DVC and push it to the DVC remote (the default one, or "
        "REMOTE); model.yaml then marks the source dvc: true and the table stays out of git",
    )
    add(
        "lint-manifests",
        "Check the committed rendered files: kubernetes-validate --strict and "
        "the project's policy. Exit 1 listing every violation.",
        model=False,
    )
    p = add(
        "guard",
        "The guard: receive Alertmanager webhooks and roll back (a commit or a PR, per the "
        "environment's auto_rollback) the release an action=rollback alert names, then "
        "quarantine it.",
        model=False,
    )
    guard = p.add_subparsers(dest="guard_command", required=True, metavar="ACTION")
    p = guard.add_parser("serve", help="serve POST /alerts, /healthz and /metrics")
    p.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    p.add_argument("--port", type=int, default=9095, help="port (default: %(default)s)")
    p.add_argument(
        "--dry-run", action="store_true", help="decide and log, but commit and open nothing"
    )
    p.add_argument(
        "--max-rollbacks",
        type=int,
        default=1,
        help="automatic rollbacks allowed per environment per window (default: %(default)s)",
    )
    p.add_argument(
        "--window-minutes",
        type=int,
        default=60,
        help="the rate limit's window (default: %(default)s)",
    )
    p = add(
        "baseline",
        "The gate's baseline as a bundle (a folder: production's model file and baseline.json, "
        "saying where it came from), so that a pull request's gate needs no credential: the "
        "default branch exports it with the read credentials, pull requests fetch it.",
        model=False,
    )
    actions = p.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    out_default = read_settings().baseline
    for name, text in (
        (
            "export",
            "write the bundle of the model's baseline environment: its active release's model "
            "pulled from the registry by digest, read from the GitOps repository (needs their "
            "read credentials)",
        ),
        (
            "fetch",
            "GitLab CI: download the bundle the default branch's `baseline: [MODEL]` job "
            "exported, with CI_JOB_TOKEN; none yet (or expired) leaves the folder empty",
        ),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument(
            "--model",
            default=DEFAULT_MODEL,
            help="folder name under models/ (default: %(default)s)",
        )
        action.add_argument(
            "--out",
            type=Path,
            required=not out_default,
            default=Path(out_default) if out_default else None,
            help="the bundle folder, inside the repository; replaced whole "
            "(default: MLOPS_BASELINE" + (f", now {out_default})" if out_default else ")"),
        )
    p = add(
        "monitor",
        "Report how the active releases of an environment behave, from Prometheus: drift per "
        "feature, predictions vs the reference, anomaly rate, p99 latency, errors and "
        "availability over --since. Markdown on stdout and in DIR/monitor.md, with PNG plots; "
        "exit 1 when a --fail-on condition holds, 3 when Prometheus does not answer.",
        model=False,
    )
    p.add_argument("--env", required=True, help="environment whose active releases to report")
    p.add_argument("--model", help="one model (default: every model the environment serves)")
    p.add_argument(
        "--since",
        default="1h",
        help="the window, a Prometheus duration from 10s to 90d (default: %(default)s)",
    )
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="Prometheus' base URL, http(s) (default: $MLOPS_PROMETHEUS_URL)",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for monitor.md and the PNGs, inside the repository; replaced whole "
        "(default: artifacts/monitor/<env>)",
    )
    p.add_argument(
        "--fail-on",
        nargs="+",
        default=[],
        choices=MONITOR_CONDITIONS,
        metavar="CONDITION",
        help="exit 1 when one of these holds for a release: "
        + ", ".join(MONITOR_CONDITIONS)
        + " (the alerts' conditions over the window)",
    )
    p.add_argument(
        "--verdict",
        type=Path,
        metavar="FILE",
        help="also append MONITOR_FAILING=true|false and MONITOR_MODELS=<JSON array of the "
        "models a --fail-on condition holds for> to FILE (e.g. $GITHUB_OUTPUT, a GitLab dotenv "
        "report), once the report is made (exit 0 or 1); never on bad input or an unreachable "
        "Prometheus",
    )
    p = add(
        "cluster-job",
        "Apply the model's training Job (multi-worker, with its headless Service) or its "
        "tuning Job, as committed in manifests/jobs/<model>/, to the cluster of the current "
        "kube context (KUBECONFIG); a previous Job of that name is replaced. Exit 1 when the "
        "committed Jobs are stale or invalid, 3 when the cluster does not answer.",
    )
    p.add_argument("--job", required=True, choices=("train", "tune"), help="which Job to start")
    p = add(
        "run", "Run the pipeline in order, skipping unchanged stages: " + ", ".join(PIPELINE) + "."
    )
    baseline(p)
    p.add_argument(
        "--force", action="store_true", help="re-run every stage even when DVC sees no change"
    )
    p.add_argument(
        "--until",
        choices=PIPELINE,
        default=PIPELINE[-1],
        metavar="STAGE",
        help=f"stop after this stage ({', '.join(PIPELINE)}; default: %(default)s)."
        " Merge-request pipelines stop at the gate.",
    )
    return parser


def _progress(line: str) -> None:
    print(line, flush=True)


def _print_rules(
    ws: Workspace, kind: type[evidence.Blessing] | type[evidence.InfraBlessing]
) -> None:
    """The rules of a blessing or an infra blessing, one per row, if the stage wrote one."""
    from pipelines.core.report import table

    path = evidence.at(ws, kind)
    if not path.is_file():
        return
    rules = evidence.load(path, kind).rules
    print(
        table(
            ["rule", "verdict", "reason"],
            [[r.rule, "pass" if r.passed else "FAIL", r.reason] for r in rules],
        )
    )


def _config(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(json_schema(), indent=2))
    else:
        print(
            json.dumps(load_model(find_root(), args.model).model.model_dump(mode="json"), indent=2)
        )
    return 0


def _stage(ws: Workspace, args: argparse.Namespace) -> int:
    """Any pipeline stage, from the registry: the same run and summary as in `mlops run`."""
    from pipelines.pipeline import Options

    if args.command == "promote" and args.merge:
        from pipelines.adapters.scm import request_branch
        from pipelines.stages import promote

        prefix = request_branch("promote", args.to_env)
        print(f"promote: {promote.merge_local(ws, prefix, _progress)}")
        return 0
    if args.command == "train" and (args.worker or args.job):
        return _train_worker(ws, args)
    stage = STAGES[args.command]
    opts = Options(
        progress=_progress,
        baseline=getattr(args, "baseline", None),
        env=getattr(args, "env", None) or Options.env,
        to_env=getattr(args, "to_env", None) or Options.to_env,
        from_env=getattr(args, "from_env", None) or Options.from_env,
        trials=getattr(args, "trials", None),
        timeout=getattr(args, "timeout", None),
        workers=getattr(args, "workers", None),
        storage=getattr(args, "storage", None),
    )
    summary = stage.execute(ws, opts)
    # A refusal raises, and its message lists the failed rules; a blessing shows them all.
    if stage.rules:
        _print_rules(ws, stage.rules)
    print(f"{stage.name}: {summary}")
    return 0


def _train_worker(ws: Workspace, args: argparse.Namespace) -> int:
    """One training worker: its cluster from TF_CONFIG (local workers), or from the Indexed
    Job's name, headless Service and port with the pod's JOB_COMPLETION_INDEX."""
    from pipelines.core import distribution
    from pipelines.stages import train

    env = read_settings()
    try:
        if args.job:
            if not env.job_completion_index.isdigit() or not args.workers:
                raise ValueError("a Job worker needs --workers and JOB_COMPLETION_INDEX")
            cluster = distribution.job_cluster(
                args.job,
                args.job_service or args.job,
                args.workers,
                int(env.job_completion_index),
                args.job_port or distribution.JOB_PORT,
            )
        else:
            if not env.tf_config:
                raise ValueError("a worker needs TF_CONFIG")
            cluster = distribution.parse_tf_config(env.tf_config)
    except ValueError as exc:
        raise ConfigError(
            f"not a training worker: {exc}",
            hint="start workers with `mlops train --workers N`, not with --worker",
        ) from exc
    if args.workers is not None and args.workers != cluster.size:
        raise ConfigError(f"--workers {args.workers} but the cluster has {cluster.size} workers")
    result = train.run_worker(ws, cluster, _progress)
    if result is not None:
        print(
            f"train: chief wrote {result.tflite} (sha256 {result.tflite_sha256[:12]}), "
            f"{result.summary()} on {cluster.size} workers"
        )
    return 0


def _cluster_job(ws: Workspace, args: argparse.Namespace) -> int:
    from pipelines.stages import cluster_job

    r = cluster_job.run(ws, args.job, _progress)
    print(
        f"cluster-job: started {r.namespace}/{r.job} ({', '.join(r.applied)}); follow it with "
        f"`kubectl -n {r.namespace} logs -f job/{r.job}`"
    )
    return 0


def _baseline(ws: Workspace, args: argparse.Namespace) -> int:
    from pipelines.stages import gate

    if args.baseline_command == "fetch":
        print(f"baseline fetch: {gate.fetch_gitlab_bundle(ws.root, args.out, ws.name)}")
        return 0
    result = gate.export_baseline(ws, args.out)
    release = result.record.release
    print(
        f"baseline export: {result.folder}: "
        + (
            f"{result.record.environment} release {release.release_id} "
            f"(model sha256 {release.model_sha256[:12]}…, image {release.image})"
            if release
            else f"{result.record.environment} has no release yet (record only)"
        )
        + f", GitOps commit {result.record.gitops_commit[:12] or '(none yet)'}"
    )
    return 0


def _rollback(ws: Workspace, args: argparse.Namespace) -> int:
    from pipelines.adapters.scm import request_branch
    from pipelines.stages import promote, rollback

    if args.merge:
        prefix = request_branch("rollback", args.env)
        print(f"rollback: {promote.merge_local(ws, prefix, _progress)}")
        return 0
    r = rollback.run(ws, args.env, progress=_progress, reactivate=args.reactivate)
    print(f"rollback: {r.detail}" + (f"\n  {r.url}" if r.url else ""))
    return 0


def _status(ws: Workspace, args: argparse.Namespace) -> int:
    from pipelines.core.report import table
    from pipelines.stages import status

    result = status.run(ws, args.env, live=not args.no_live)
    rows = result.rows

    def quarantined(r: status.Row) -> str:
        return ", ".join(r.quarantined) or "-"

    print(
        table(
            [
                "environment",
                "model",
                "active",
                "preview",
                "awaiting approval",
                "live",
                "quarantined",
            ],
            [
                [r.env, r.model, r.active, r.preview, r.awaiting, r.live, quarantined(r)]
                for r in rows
            ],
        )
    )
    if result.requests_note:
        print(f"  {result.requests_note}")
    for r in rows:
        for finding in r.findings:
            print(f"  {r.env}/{r.model}: {finding}")
    return 1 if any(r.findings for r in rows) else 0


def _capacity(args: argparse.Namespace) -> int:
    from pipelines.core.capacity import rows
    from pipelines.core.report import table
    from pipelines.stages import capacity

    r = capacity.run(find_root(), args.env)
    print(table(["node", "pod", "cpu", "memory"], rows(r.plan)))
    print("\n".join(r.lines()))
    return 0 if r.fits else 1


def _report(ws: Workspace, args: argparse.Namespace) -> int:
    from pipelines.adapters.artifacts import appendable
    from pipelines.config import inside
    from pipelines.stages import ci_report

    # --metrics replaces a file, and GitLab collects reports only from inside the project: it
    # must stay in the repository. --summary only appends, to $GITHUB_STEP_SUMMARY, a file the
    # runner keeps outside the checkout by design, so it may be anywhere.
    if args.metrics is not None:
        inside(ws.root, args.metrics, "--metrics")
    if args.summary is not None:
        appendable(args.summary, "--summary")
    r = ci_report.run(
        ws,
        post=args.post,
        summary_file=args.summary,
        metrics_file=args.metrics,
        artifacts_url=args.artifacts_url,
    )
    print(r.markdown, end="")
    if r.posted:
        print(f"report: {r.posted}", file=sys.stderr)
    return 0


def _data(args: argparse.Namespace) -> int:
    from pipelines.adapters.dvc import pull_with_credentials, track_source
    from pipelines.config import FileSource

    root = find_root()
    if args.data_command == "pull":
        source = load_model(root, args.model).model.data.source
        if not isinstance(source, FileSource) or not source.dvc:
            print(f"data pull: {args.model}'s source is not kept in DVC; nothing to pull")
            return 0
        creds = reveal(read_settings().dvc_credentials) or None
        pulled = pull_with_credentials(root, source.path, creds)
        print(f"data pull: {source.path} {'pulled' if pulled else 'already present'}")
        return 0
    # PATH is the user's, relative to where they are; DVC wants it relative to the project.
    path = os.path.relpath(Path(args.path).absolute(), root)
    t = track_source(root, path, args.remote)
    print(
        f"data track: {t.path} (md5 {t.md5}) pushed to the DVC remote {t.remote!r}; "
        f"commit {t.pointer} and .gitignore"
    )
    return 0


def _registry_login(_: argparse.Namespace) -> int:
    from pipelines.adapters.registry import Registry, login

    env = read_settings()
    user, password = env.registry_username, reveal(env.registry_password)
    if not user or not password:
        raise ConfigError(
            "no registry credentials in the environment",
            hint="set REGISTRY_USERNAME and REGISTRY_PASSWORD (masked)",
        )
    host = Registry().host
    print(f"registry-login: credentials for {host} stored in {login(host, user, password)}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from pipelines.adapters import rendering as render
    from pipelines.config import inside, load_gitops

    root = find_root()
    manifests = inside(root, root / "manifests", "manifests/")
    rendering = render.render_with(root, manifests, load_gitops(root))
    render.require_clean(rendering)
    if args.check:
        stale = render.stale_diff(manifests, rendering.files, args.env)
        if stale:
            print(stale, end="")
            print(
                "mlops render: the committed manifests are stale; run `mlops render` and "
                "commit the result",
                file=sys.stderr,
            )
            return 1
        print("render: committed manifests are current")
        return 0
    render.write(manifests, rendering.files, args.env)
    print(f"render: {len(render.select(rendering.files, args.env))} files, all valid")
    return 0


def _configure(args: argparse.Namespace) -> int:
    from pipelines.stages import configure

    r = configure.run(find_root(), args.repo_url, args.registry, args.owners, args.provider)
    v = r.values
    print(
        f"configure: repo_url {v.repo_url}, registry {v.registry}, owners "
        f"{' '.join(v.owners)} ({v.provider})"
    )
    if not r.changed:
        print("configure: already so; nothing changed")
        return 0
    for path in r.changed:
        print(f"  changed {path}")
    print(
        "configure: review and commit these files. In CI, set the GitOps remote and the "
        "registry's credentials (README, 'Using this template in your organisation')."
    )
    return 0


def _init(args: argparse.Namespace) -> int:
    from pipelines.core.scaffold import cloudbuild_triggers
    from pipelines.pipeline import sync_dvc_yaml
    from pipelines.stages import init

    root = find_root()
    r = init.run(
        root,
        args.name,
        args.data,
        args.label,
        args.task,
        tuple(args.exclude),
        args.force,
        args.dvc,
    )
    inf, folder = r.inferred, r.folder.relative_to(root)
    kinds = ", ".join(f"{n} {t}" for t, n in sorted(Counter(f.type for f in inf.features).items()))
    print(f"init: {args.data}: {inf.rows} rows; {len(inf.features)} features ({kinds})")
    print(f"init: task {inf.task} ({inf.task_reason})")
    if not r.written:
        print(f"init: {folder} is already what init writes; nothing changed")
        if r.tracked is not None:
            print(f"init: {r.tracked.path} is in the DVC remote {r.tracked.remote!r}")
        return 0
    sync_dvc_yaml(root)
    for line in r.ci:
        print(f"init: {line}")
    if r.tracked is not None:
        t = r.tracked
        print(
            f"init: {t.path} (md5 {t.md5}) pushed to the DVC remote {t.remote!r}; if git "
            f"tracked it before, stop that: git rm --cached {t.path}"
        )
    else:
        print(
            f"init: {args.data} stays in git; to keep it in your DVC remote instead, run init "
            "again with --dvc --force (README: 'Data in a DVC remote')"
        )
    print(
        f"init: wrote {folder}/model.yaml, architecture.py, expectations.py; dvc.yaml lists "
        f"its stages\n\nNext:\n  mlops config --model {args.name}    # review what was inferred"
        f"\n  mlops run --model {args.name}       # validate, train, gate ... through release"
        f"\n  git add {folder} dvc.yaml .gitlab-ci.yml Jenkinsfile"
        + (
            f" {r.tracked.pointer} {Path(r.tracked.path).parent / '.gitignore'}"
            if r.tracked
            else f" {args.data}"
        )
        + " && git commit"
        + "\n\nOn Cloud Build, which runs one model per build, give it its two triggers (README, "
        "'CI: Jenkins and Cloud Build'):\n"
        + "\n".join("  " + c.replace("\n", "\n  ") for c in cloudbuild_triggers(args.name))
    )
    return 0


def _guard(args: argparse.Namespace) -> int:
    import datetime as dt

    from pipelines.core.guard import RateLimit
    from pipelines.errors import ConfigError
    from pipelines.stages import guard

    if args.max_rollbacks < 1 or args.window_minutes < 1:
        raise ConfigError("--max-rollbacks and --window-minutes must be at least 1")
    cfg = guard.configure(
        find_root(),
        read_settings().guard_token,
        RateLimit(args.max_rollbacks, dt.timedelta(minutes=args.window_minutes)),
        args.dry_run,
    )
    guard.run(cfg, args.host, args.port)
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from pipelines.adapters.artifacts import appendable, monitor_dir
    from pipelines.config import inside
    from pipelines.errors import ConfigError
    from pipelines.stages import monitor

    root = find_root()
    url = args.prometheus or read_settings().prometheus_url
    if not url:
        raise ConfigError(
            "no Prometheus to ask",
            hint="pass --prometheus URL or set MLOPS_PROMETHEUS_URL",
        )
    out = inside(root, args.out or monitor_dir(root, args.env), "--out")
    # --out must stay in the repository; --verdict only appends, to a file the CI runner keeps
    # outside the checkout ($GITHUB_OUTPUT), so it may be anywhere, like report's --summary.
    if args.verdict is not None:
        appendable(args.verdict, "--verdict")
    r = monitor.run(
        root,
        args.env,
        url=url,
        since=args.since,
        out=out,
        model=args.model,
        fail_on=args.fail_on,
        verdict_file=args.verdict,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(r.markdown, end="")
    print(f"monitor: report and {len(r.plots)} plots in {r.out}", file=sys.stderr)
    if r.failed:
        print(f"monitor: failing: {', '.join(r.failed)} ({', '.join(r.models)})", file=sys.stderr)
        return 1
    return 0


def _lint(_: argparse.Namespace) -> int:
    from pipelines.adapters import rendering as render
    from pipelines.config import load_gitops
    from pipelines.errors import CheckFailed

    root = find_root()
    violations = render.lint(root / "manifests", load_gitops(root))
    if violations:
        raise CheckFailed(
            f"{len(violations)} manifest violation(s):\n"
            + "\n".join(f"  - {v}" for v in violations),
            hint="fix the templates or state and run `mlops render`",
        )
    print(f"lint-manifests: {len(render.on_disk(root / 'manifests'))} files pass schema and policy")
    return 0


def _run(ws: Workspace, args: argparse.Namespace) -> int:
    from pipelines import pipeline
    from pipelines.core.report import table

    result = pipeline.run(
        ws, baseline=args.baseline, force=args.force, until=args.until, progress=_progress
    )
    print()
    print(
        table(
            ["stage", "status", "seconds", "detail"],
            [[r.stage, r.status, f"{r.seconds:.1f}", r.detail] for r in result.reports],
        )
    )
    for report in result.reports:
        kind = STAGES[report.stage].rules
        if kind and report.status in ("ran", "failed"):
            print()
            _print_rules(ws, kind)
    if result.error is not None:
        print(f"\nmlops run: {result.error}", file=sys.stderr)
        return result.error.exit_code
    print(
        f"\nmlops run: done through {args.until}. Data Docs: "
        f"{ws.artifacts('validate') / 'data_docs/index.html'}"
    )
    return 0


STAGE_COMMANDS: dict[str, Callable[[Workspace, argparse.Namespace], int]] = {
    **dict.fromkeys(STAGES, _stage),
    "rollback": _rollback,
    "baseline": _baseline,
    "status": _status,
    "run": _run,
    "report": _report,
    "cluster-job": _cluster_job,
}
# Stages are imported on demand: `mlops --help` and `mlops render` must not pay for TF or GX.
REPO_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "config": _config,
    "capacity": _capacity,
    "init": _init,
    "render": _render,
    "configure": _configure,
    "lint-manifests": _lint,
    "guard": _guard,
    "monitor": _monitor,
    "registry-login": _registry_login,
    "data": _data,
}


def _require_known_names(args: argparse.Namespace) -> None:
    """Every --env/--to/--from names a file in manifests/environments/ and --model a folder in
    models/, exactly (no ../x, ./production, production/ or Production): the values become
    paths and branch names, and CI's environment protection keys on them."""
    from pipelines.config import model_names, require_environment, require_known

    root: Path | None = None
    for attr in ("env", "to_env", "from_env"):
        value = getattr(args, attr, None)
        if value is not None:
            root = root or find_root()
            require_environment(root, value)
    if getattr(args, "model", None) is not None:
        root = root or find_root()
        require_known("model", args.model, model_names(root))


def main(argv: Sequence[str] | None = None) -> int:
    """The `mlops` command: run a subcommand and map its errors to an exit code."""
    try:
        settings = read_settings()  # the parser's defaults read it too: refuse a bad flag first
    except ConfigError as exc:
        print(f"mlops: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = _parser().parse_args(argv)
    args.debug = args.debug or settings.debug
    try:
        _require_known_names(args)
        if args.command in REPO_COMMANDS:
            return REPO_COMMANDS[args.command](args)
        return STAGE_COMMANDS[args.command](load_model(find_root(), args.model), args)
    except MlopsError as exc:
        print(f"mlops {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mlops {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else is a bug in mlops, never the user's input
        from pipelines.adapters.gitops import redact

        if args.debug:
            traceback.print_exc()
        print(
            f"mlops {args.command}: internal error (a bug in mlops): {type(exc).__name__}: "
            f"{redact(str(exc))[:300]}\n  hint: "
            + (
                "report it, with the traceback above, to this repository's maintainers"
                if args.debug
                else "re-run with --debug for the traceback, and report it to "
                "this repository's maintainers"
            ),
            file=sys.stderr,
        )
        return INTERNAL_ERROR


def entry() -> None:
    """The console script. Once TensorFlow is loaded, interpreter shutdown spends about 2 s in
    its native finalizers (measured: bench/pipeline_warm_vs_cold.py); every artifact is already
    written atomically and fsynced by then, so the process ends without them."""
    code = main()
    if "tensorflow" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
