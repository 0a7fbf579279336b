"""The ``mlops`` command: parse arguments, load configuration, call a stage, map errors to exit
codes (0 ok, 1 a check said no, 2 usage or configuration, 3 infrastructure unavailable)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines import __version__
from pipelines.config import DEFAULT_MODEL, Workspace, find_root, json_schema, load_model
from pipelines.errors import MlopsError

EPILOG = """\
exit codes: 0 success; 1 a check said no (invalid data, failed gate); 2 usage or
configuration error; 3 infrastructure unavailable. Every failure says what to do next.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops", description="GitOps CI/CD for ML models: ingest, validate, train, "
        "evaluate and gate, with every release recorded in git.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--model", default=DEFAULT_MODEL,
                       help="folder name under models/ (default: %(default)s)")
        return p

    p = add("config", "Validate models/<model>/model.yaml and print it, or print its schema.")
    p.add_argument("--schema", action="store_true", help="print the JSON schema of model.yaml")
    add("ingest", "Write the dataset and its deterministic split under data/, tracked by data.dvc.")
    add("validate", "Run the Great Expectations suite as Checkpoints; write Data Docs. "
        "Exit 1 on invalid data.")
    add("train", "Train the Keras model with fixed seeds; export the TFLite serving artifact.")
    add("evaluate", "Score the TFLite artifact (with LiteRT) on the test split.")
    for name, text in (
        ("gate", "Apply the gate rules and write blessing.json. Exit 1 when refused."),
        ("run", "Run the pipeline in order (ingest, validate, train, evaluate, gate, package, "
         "verify), skipping unchanged stages."),
    ):
        p = add(name, text)
        p.add_argument("--baseline", type=Path, metavar="TFLITE",
                       help="TFLite model to compare against (default: none until production "
                       "has a release)")
        if name == "run":
            from pipelines.core.dvcgraph import PIPELINE as STAGES

            p.add_argument("--force", action="store_true",
                           help="re-run every stage even when DVC sees no change")
            p.add_argument("--until", choices=STAGES, default=STAGES[-1], metavar="STAGE",
                           help=f"stop after this stage ({', '.join(STAGES)}; default: "
                           "%(default)s). Merge-request pipelines stop at the gate.")
    add("package", "Build the serving image of the blessed model (hermetic, network off), push "
        "it and the model artifact to REGISTRY, and write the release record and SBOM. "
        "Re-uses an image the registry already has for the same inputs.")
    add("verify", "Run the pushed image by digest (non-root, read-only), query it with the test "
        "split and malformed requests, and write infra_blessing.json. Exit 1 when refused.")
    return parser


def _workspace(args: argparse.Namespace) -> Workspace:
    return load_model(find_root(), args.model)


def _dispatch(args: argparse.Namespace) -> int:
    # Stages are imported on demand: `mlops --help` must not pay for pandas, TF or GX.
    if args.command == "config":
        if args.schema:
            print(json.dumps(json_schema(), indent=2))
        else:
            print(json.dumps(_workspace(args).model.model_dump(mode="json"), indent=2))
        return 0
    ws = _workspace(args)
    if args.command == "ingest":
        from pipelines.stages import ingest

        r = ingest.run(ws)
        verb = "wrote" if r.changed else "unchanged"
        print(f"ingest: {verb} {r.rows}; data.dvc md5 {r.data_md5}")
    elif args.command == "validate":
        from pipelines.stages import validate

        v = validate.run(ws)
        print(f"validate: all {v.evaluated} expectations passed; Data Docs: {v.docs_index}")
    elif args.command == "train":
        from pipelines.stages import train

        t = train.run(ws)
        print(f"train: {t.epochs} epochs, val accuracy {t.final_val_accuracy:.4f}; "
              f"{t.tflite} sha256 {t.tflite_sha256}")
    elif args.command == "evaluate":
        from pipelines.stages import evaluate

        m = evaluate.run(ws).metrics
        print(f"evaluate: accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}, "
              f"p99 {m['latency_ms']['p99']:.3f} ms, {m['size_bytes']} bytes")
    elif args.command == "gate":
        from pipelines.stages import gate

        _print_rules(gate.run(ws, args.baseline).blessing)
        print("gate: blessed")
    elif args.command == "package":
        from pipelines.stages import package

        pkg = package.run(ws, progress=_progress)
        print(f"package: {'re-used' if pkg.reused else 'built and pushed'} {pkg.image}\n"
              f"  release {pkg.release_id}; model artifact {pkg.model_artifact}; "
              f"record {pkg.record}")
    elif args.command == "verify":
        from pipelines.stages import verify

        _print_rules(verify.run(ws, progress=_progress).infra_blessing)
        print("verify: the image is blessed")
    elif args.command == "run":
        return _run(ws, args)
    return 0


def _progress(line: str) -> None:
    print(line, flush=True)


def _print_rules(blessing_path: Path) -> None:
    from pipelines.core.report import table

    rules = json.loads(blessing_path.read_text(encoding="utf-8"))["rules"]
    print(table(["rule", "verdict", "reason"],
                [[r["rule"], "pass" if r["passed"] else "FAIL", r["reason"]] for r in rules]))


def _run(ws: Workspace, args: argparse.Namespace) -> int:
    from pipelines.core.report import table
    from pipelines.stages import run

    result = run.run(ws, baseline=args.baseline, force=args.force, until=args.until,
                     progress=_progress)
    print()
    print(table(["stage", "status", "seconds", "detail"],
                [[r.stage, r.status, f"{r.seconds:.1f}", r.detail] for r in result.reports]))
    for stage, record in (("gate", "blessing.json"), ("verify", "infra_blessing.json")):
        path = ws.artifacts(stage) / record
        if path.is_file() and any(r.stage == stage and r.status in ("ran", "failed")
                                  for r in result.reports):
            print()
            _print_rules(path)
    if result.error is not None:
        print(f"\nmlops run: {result.error}", file=sys.stderr)
        return result.error.exit_code
    print(f"\nmlops run: done through {args.until}. Data Docs: "
          f"{ws.artifacts('validate') / 'data_docs/index.html'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except MlopsError as exc:
        print(f"mlops {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mlops {args.command}: interrupted", file=sys.stderr)
        return 130


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
