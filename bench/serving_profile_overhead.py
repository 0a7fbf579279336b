"""What the reference profile costs the model server: the same model served with its profile
(reference gauges, an anomaly score per instance, the anomaly histogram and counter) and
without it (what images packaged before issue 11 do).

Both servers run at once as child processes, pinned to core 0; wrk (core 1) loads them in
alternation, run after run, so a change in the machine's load hits both alike.

Goal (issue 11): with the profile, at least 90% of the requests per second without it.
Needs: wrk (apt) and a trained model (`make run`, or this script trains one in a temporary
clone).
"""

from __future__ import annotations

import argparse
import contextlib
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
    require_tools,
    running_server,
    table,
    workload,
    wrk,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="per measured wrk run")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per server")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    require_tools("wrk", "taskset")
    results: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        repo, _, script = workload(tmp)
        env = bench_env()
        ports = {}
        for name in results:
            mdir = model_dir(repo, tmp / f"model-{name}", with_profile=name == "with")
            ports[name] = port = free_port()
            stack.enter_context(running_server(*model_server(mdir, port, env), port))
            wrk(port, script, 2, args.connections)  # warm-up: first requests pay for lazy setup
        for _ in range(args.runs):
            for name, port in ports.items():
                results[name].append(wrk(port, script, args.seconds, args.connections))
                print(f"{name}: {results[name][-1]}", file=sys.stderr)

    med = {n: medians(rs) for n, rs in results.items()}
    header(
        f"Model server with and without the reference profile: {args.connections} connections, "
        f"{args.runs} x {args.seconds} s wrk runs each, alternated (medians)",
        "servers on core 0, wrk on core 1",
    )
    base = med["without"]["rps"]
    print(
        table(
            ["server", *LATENCY, "vs without"],
            [
                latency_row(label, r, f"{r['rps'] / base:.0%}")
                for label, r in (
                    ("with the profile (gauges, anomaly scores)", med["with"]),
                    ("without (images before issue 11)", med["without"]),
                )
            ],
        )
    )
    ratio = med["with"]["rps"] / base
    print()
    print(
        table(
            ["goal", "measured", "met"],
            [
                [
                    ">= 90% of the requests/s without the profile",
                    f"{ratio:.0%}",
                    "yes" if ratio >= 0.9 else "no",
                ]
            ],
        )
    )


if __name__ == "__main__":
    main()
