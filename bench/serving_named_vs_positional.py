"""What naming the features costs a request: the model server serving a model of named features
(diabetes: 10 features, one categorical), loaded with the same row sent two ways, as an object
keyed by feature name (TF Serving's row format, ``{"instances": [{"age": 50, ...}]}``) and as
a positional row (``{"instances": [[50, ...]]}``).

One server runs as a child process pinned to core 0; wrk (core 1) loads it with the two bodies
in alternation, run after run, so a change in the machine's load hits both alike.

Goal (issue 10): report both and the ratio.
Needs: wrk (apt) and a trained diabetes model (`mlops run --model diabetes --until evaluate`,
or this script trains one in a temporary clone).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import (
    LATENCY,
    bench_env,
    free_port,
    header,
    latency_row,
    medians,
    model_dir,
    model_server,
    post_script,
    require_tools,
    running_server,
    table,
    trained_workspace,
    wrk,
)

MODEL = "diabetes"
LABELS = {
    "named": "objects keyed by feature name",
    "positional": "positional rows",
}


def bodies(repo: Path) -> dict[str, str]:
    """The first example of ``repo``'s test split as a predict body, named and positional."""
    from pipelines.adapters.datasets import read_table, request_instances
    from pipelines.config import load_model

    ws = load_model(repo, MODEL)
    row = read_table(ws.split_path("test"), "test split").head(1)
    return {
        name: json.dumps({"instances": request_instances(ws, row, named=name == "named")})
        for name in LABELS
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="per measured wrk run")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per body")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    require_tools("wrk", "taskset")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in LABELS}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo = trained_workspace(tmp, MODEL)
        scripts = {}
        for name, body in bodies(repo).items():
            print(f"{name}: {body}", file=sys.stderr)
            scripts[name] = post_script(tmp / f"{name}.lua", body)
        mdir = model_dir(repo, tmp / "model", with_profile=True, model=MODEL)
        port = free_port()
        with running_server(*model_server(mdir, port, bench_env()), port):
            for script in scripts.values():  # warm-up: first requests pay for lazy setup
                wrk(port, script, 2, args.connections, MODEL)
            for _ in range(args.runs):
                for name, script in scripts.items():
                    results[name].append(wrk(port, script, args.seconds, args.connections, MODEL))
                    print(f"{name}: {results[name][-1]}", file=sys.stderr)

    med = {n: medians(rs) for n, rs in results.items()}
    header(
        f"Model server, {MODEL} (named features), one row per request sent two ways: "
        f"{args.connections} connections, {args.runs} x {args.seconds} s wrk runs each, "
        "alternated (medians)",
        "server on core 0, wrk on core 1",
    )
    base = med["positional"]
    print(
        table(
            ["instances", *LATENCY, "req/s vs positional", "p99 vs positional"],
            [
                latency_row(
                    label,
                    med[name],
                    f"{med[name]['rps'] / base['rps']:.0%}",
                    f"{med[name]['p99'] / base['p99']:.2f}x",
                )
                for name, label in LABELS.items()
            ],
        )
    )


if __name__ == "__main__":
    main()
