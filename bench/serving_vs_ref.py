"""The model server of this checkout against the one of another git revision (by default the
branch this one was cloned from), serving the same model: does a change cost requests/s on the
predict hot path?

Both servers run at once as child processes, pinned to core 0, each from its own checkout;
wrk (core 1) loads them in alternation, run after run, so a change in the machine's load hits
both alike.

Under wrk the numbers swing with the machine's load; so the predict path is also timed in
process, as CPU time (``time.process_time``) per request through each checkout's ASGI app
(middleware, routing, validation, the model, the JSON answer; no sockets), each checkout in its
own child process, alternated. CPU time is what a busy machine disturbs least.

Goal: the predict hot path keeps at least 95% of the reference's requests/s, and costs at most
5% more CPU per request (a smaller gap is within this machine's noise).
Needs: wrk (apt), git, and a trained model (`make run`, or this script trains one in a
temporary clone).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    LATENCY,
    PY,
    ROOT,
    free_port,
    header,
    latency_row,
    median,
    medians,
    model_dir,
    post_script,
    require_tools,
    running_server,
    sample_body,
    table,
    trained_workspace,
    wrk,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", default="origin/main", help="the revision to compare against")
    parser.add_argument("--seconds", type=int, default=10, help="per measured wrk run")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per server")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--asgi-requests", type=int, default=3000, help="per in-process run")
    args = parser.parse_args()
    from pipelines.serving.contract import SERVER_MODULE, Env

    require_tools("wrk", "taskset", "git")
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "--verify", f"{args.ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if rev.returncode != 0:
        raise SystemExit(f"--ref {args.ref!r} is no revision of {ROOT}")
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    labels = {
        "this": f"this checkout ({head} + worktree)",
        "ref": f"{args.ref} ({rev.stdout.strip()})",
    }
    results: dict[str, list[dict[str, float]]] = {"this": [], "ref": []}
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        ref_root = tmp / "ref"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(ref_root)], check=True)
        subprocess.run(
            ["git", "-C", str(ref_root), "checkout", "-q", rev.stdout.strip()], check=True
        )
        repo = trained_workspace(tmp)
        script = post_script(tmp / "post.lua", sample_body(repo))
        mdir = model_dir(repo, tmp / "model", with_profile=True)
        ports = {}
        for name, code in (("this", ROOT), ("ref", ref_root)):
            ports[name] = port = free_port()
            server_env = {
                **os.environ,
                "PYTHONPATH": str(code),
                "TF_CPP_MIN_LOG_LEVEL": "3",
                "CI": "1",
                Env.MODEL_DIR: str(mdir),
                Env.PORT: str(port),
                Env.HOST: "127.0.0.1",
            }
            stack.enter_context(
                running_server([PY, "-m", SERVER_MODULE], server_env, port, cwd=code)
            )
            wrk(port, script, 2, args.connections)  # warm-up: first requests pay for lazy setup
        for _ in range(args.runs):
            for name, port in ports.items():
                results[name].append(wrk(port, script, args.seconds, args.connections))
                print(f"{name}: {results[name][-1]}", file=sys.stderr)
        stack.close()  # the servers stop before the in-process timing
        cpu: dict[str, list[float]] = {"this": [], "ref": []}
        for _ in range(args.runs):
            for name, code in (("this", ROOT), ("ref", ref_root)):
                out = subprocess.run(
                    [PY, "-c", ASGI_TIMER, str(mdir), str(args.asgi_requests)],
                    cwd=code,
                    env={**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3"},
                    input=sample_body(repo),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                cpu[name].append(float(out.stdout.split()[-1]))
                print(f"{name}: {cpu[name][-1]:.1f} us CPU per request", file=sys.stderr)

    med = {n: medians(rs) for n, rs in results.items()}
    header(
        f"Model server, this checkout vs {args.ref}: predict with one instance, "
        f"{args.connections} connections, {args.runs} x {args.seconds} s wrk runs each, "
        "alternated (medians)",
        "servers on core 0, wrk on core 1",
    )
    base = med["ref"]["rps"]
    print(
        table(
            ["server", *LATENCY, "vs reference"],
            [
                latency_row(labels[n], med[n], f"{med[n]['rps'] / base:.0%}")
                for n in ("this", "ref")
            ],
        )
    )
    us = {n: median(v) for n, v in cpu.items()}
    print()
    print(
        table(
            ["server", "CPU per predict request, in process (µs)", "vs reference"],
            [[labels[n], f"{us[n]:.1f}", f"{us[n] / us['ref']:.0%}"] for n in ("this", "ref")],
        )
    )
    ratio, cost = med["this"]["rps"] / base, us["this"] / us["ref"]
    print()
    print(
        table(
            ["goal", "measured", "met"],
            [
                [
                    ">= 95% of the reference's requests/s",
                    f"{ratio:.0%}",
                    "yes" if ratio >= 0.95 else "no",
                ],
                [
                    "<= 105% of the reference's CPU per request",
                    f"{cost:.0%}",
                    "yes" if cost <= 1.05 else "no",
                ],
            ],
        )
    )


# Run in a child process whose cwd and PYTHONPATH are one checkout: the median CPU time of a
# predict request (the body on stdin) through that checkout's ASGI app, in µs, over 5 blocks.
ASGI_TIMER = """
import asyncio, statistics, sys, time
from pathlib import Path
from pipelines.serving import contract
from pipelines.serving.app import create_app
from pipelines.serving.settings import Settings

model_dir, n, body = Path(sys.argv[1]), int(sys.argv[2]), sys.stdin.read().encode()
app = create_app(Settings(model_dir=model_dir, access_log="none"))
path = contract.predict_path("digits")
scope = {
    "type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
    "root_path": "", "query_string": b"", "http_version": "1.1", "scheme": "http",
    "headers": [(b"content-length", str(len(body)).encode())],
    "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
}

async def receive():
    return {"type": "http.request", "body": body, "more_body": False}

async def send(message):
    if message["type"] == "http.response.start":
        assert message["status"] == 200, message

async def main():
    async with app.router.lifespan_context(app):
        for _ in range(200):
            await app(dict(scope), receive, send)
        blocks = []
        for _ in range(5):
            start = time.process_time()
            for _ in range(n // 5):
                await app(dict(scope), receive, send)
            blocks.append((time.process_time() - start) / (n // 5) * 1e6)
    print(statistics.median(blocks))

asyncio.run(main())
"""


if __name__ == "__main__":
    main()
