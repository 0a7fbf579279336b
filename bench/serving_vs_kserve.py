"""Our model server vs KServe's Python ModelServer, serving the same TFLite model (digits) with
the same LiteRT runtime class (servers/kserve_litert.py), both over KServe's v1 protocol
(``POST /v1/models/digits:predict``) with the same body.

KServe runs twice: with its defaults (an access-log line and a latency-log line per request,
as a deployed InferenceService logs), and without per-request logging (ours logs errors only).
Each server is one worker (KServe's ``--workers 1``) with its gRPC server off (the bench is
REST). All three run at once as child processes pinned to core 0; wrk (core 1) loads them in
alternation, run after run, so a change in the machine's load hits them alike.

kserve is not one of the project's dependencies: it lives in its own venv under
.cache/bench-kserve, created here on first use (pip, from PyPI) and re-created when its pins
change. Its LiteRT and numpy are pinned to the versions of the venv running this script.

Goal (issue 10): report both; someone measured about 1.7k req/s for KServe vs 5.4k for ours on
one core.
Needs: wrk (apt), network access to PyPI once, and a trained model (`make run`, or this script
trains one in a temporary clone).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import urllib.request
from importlib.metadata import version
from pathlib import Path

from _common import (
    LATENCY,
    PY,
    ROOT,
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

HERE = Path(__file__).resolve().parent
VENV = ROOT / ".cache/bench-kserve"
KSERVE = "kserve==0.21.0"
LABELS = {
    "ours": "ours: LiteRT in Starlette/uvicorn",
    "kserve": "KServe ModelServer, defaults (logs every request)",
    "kserve-quiet": "KServe ModelServer, no per-request logs",
}
# KServe's options per variant, beside the port, one worker and gRPC off.
KSERVE_OPTIONS = {
    "kserve": [],
    "kserve-quiet": ["--enable_latency_logging", "false", "--configure_logging", "false"],
}


def pins() -> list[str]:
    """What the KServe venv holds: kserve, and the LiteRT and numpy this venv runs ours with."""
    return [KSERVE, f"ai-edge-litert=={version('ai-edge-litert')}", f"numpy=={version('numpy')}"]


def kserve_python() -> Path:
    """The KServe venv's interpreter, the venv created or re-created first if its pins differ."""
    python, stamp = VENV / "bin/python", VENV / "pins.txt"
    wanted = "\n".join(pins()) + "\n"
    if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    print(f"installing {', '.join(pins())} into {VENV}", file=sys.stderr)
    subprocess.run([PY, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *pins()], capture_output=True, text=True
    )
    if pip.returncode != 0:
        raise SystemExit(
            f"pip could not install {KSERVE} on Python {sys.version.split()[0]}:\n"
            f"{pip.stderr[-3000:]}"
        )
    stamp.write_text(wanted)
    return python


def kserve_server(
    python: Path, mdir: Path, port: int, options: list[str]
) -> tuple[list[str], dict[str, str]]:
    """KServe's ModelServer serving ``mdir`` as digits on ``port``: its command and
    environment."""
    cmd = [
        str(python),
        str(HERE / "servers/kserve_litert.py"),
        "--model_dir",
        str(mdir),
        "--model_name",
        "digits",
        "--http_port",
        str(port),
        "--workers",
        "1",
        "--enable_grpc",
        "false",
        *options,
    ]
    return cmd, bench_env()


def answer(port: int, body: str) -> list[int]:
    """The classes a server predicts for ``body``."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/digits:predict",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return [p["class"] for p in json.load(response)["predictions"]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="per measured wrk run")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per server")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    require_tools("wrk", "taskset")
    python = kserve_python()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in LABELS}
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        repo, body, script = workload(tmp)
        mdir = model_dir(repo, tmp / "model", with_profile=True)
        ports = {name: free_port() for name in LABELS}
        servers = {"ours": model_server(mdir, ports["ours"], bench_env())}
        for name, options in KSERVE_OPTIONS.items():
            servers[name] = kserve_server(python, mdir, ports[name], options)
        for name, (cmd, env) in servers.items():
            stack.enter_context(running_server(cmd, env, ports[name]))
            wrk(
                ports[name], script, 2, args.connections
            )  # warm-up: first requests pay for lazy setup
        answers = {name: answer(port, body) for name, port in ports.items()}
        if len({str(a) for a in answers.values()}) != 1:
            raise SystemExit(f"the servers predict differently: {answers}")
        for _ in range(args.runs):
            for name, port in ports.items():
                results[name].append(wrk(port, script, args.seconds, args.connections))
                print(f"{name}: {results[name][-1]}", file=sys.stderr)

    med = {n: medians(rs) for n, rs in results.items()}
    header(
        f"Our model server vs KServe's ModelServer ({KSERVE}), same TFLite model and LiteRT: "
        f"{args.connections} connections, 1 worker each, {args.runs} x {args.seconds} s wrk "
        "runs each, alternated (medians)",
        "servers on core 0, wrk on core 1",
    )
    base = med["kserve"]["rps"]
    print(
        table(
            ["server", *LATENCY, "vs KServe defaults"],
            [
                latency_row(label, med[name], f"{med[name]['rps'] / base:.2f}x")
                for name, label in LABELS.items()
            ],
        )
    )


if __name__ == "__main__":
    main()
