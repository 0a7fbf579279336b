"""Helpers shared by the benchmarks: the machine, markdown output, a clone or trained workspace,
and a model server loaded by wrk.

Imports of the project (and of pandas) stay inside the functions that need them, so every
script's ``--help`` stays fast.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PY = sys.executable
MLOPS = str(Path(sys.executable).parent / "mlops")
# The apt package of each external tool the benchmarks run.
PACKAGES = {"wrk": "wrk", "taskset": "util-linux"}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# The serving benchmarks' columns for one server's wrk medians (see latency_row).
LATENCY = ("requests/s", "p50 (ms)", "p99 (ms)")


def latency_row(label: str, r: Mapping[str, float], *ratios: str) -> list[str]:
    """A row under (first column, *LATENCY, *ratio columns): the label, ``r``'s requests/s,
    p50 and p99, then the ratio cells."""
    return [label, f"{r['rps']:,.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", *ratios]


def header(title: str, placement: str = "") -> None:
    """The heading every benchmark's output starts with, and the machine it ran on."""
    print(f"## {title}\n")
    print(f"Machine: {machine()}{'; ' + placement if placement else ''}\n")


def require_tools(*tools: str) -> None:
    for tool in tools:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install {PACKAGES.get(tool, tool)}")


def clone(dest: Path) -> Path:
    """A clone of this checkout's HEAD (committed files only) at ``dest``."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    return dest


def trained_workspace(tmp: Path, model: str = "digits") -> Path:
    """This checkout if it holds a trained ``model``, else a clone in ``tmp`` trained now."""
    if (ROOT / f"artifacts/{model}/evaluate/predictions.parquet").is_file():
        return ROOT
    repo = clone(tmp / "repo")
    print(
        f"no trained {model} model here: running the pipeline up to evaluate in a temporary clone",
        file=sys.stderr,
    )
    subprocess.run(
        [MLOPS, "run", "--model", model, "--until", "evaluate"],
        cwd=repo,
        check=True,
        env={**os.environ, "CI": "1"},
        stdout=subprocess.DEVNULL,
    )
    return repo


def model_dir(repo: Path, dest: Path, with_profile: bool = False, model: str = "digits") -> Path:
    """The folder the server loads (model.tflite, signature.json and, with ``with_profile``, the
    reference profile as the image ships it), from ``repo``'s training of ``model``."""
    from pipelines.adapters.artifacts import sha256_file
    from pipelines.config import load_model
    from pipelines.stages.package import signature

    artifact = repo / f"artifacts/{model}/train/model.tflite"
    dest.mkdir()
    shutil.copy(artifact, dest / "model.tflite")
    profile_sha = ""
    if with_profile:
        shutil.copy(repo / f"artifacts/{model}/train/profile.json", dest / "profile.json")
        profile_sha = sha256_file(dest / "profile.json")
    sig = signature(load_model(repo, model), sha256_file(artifact), profile_sha)
    (dest / "signature.json").write_text(sig.to_json())
    return dest


def sample_body(repo: Path) -> str:
    """A predict request with the first example of ``repo``'s test split."""
    import pandas as pd

    test = pd.read_parquet(repo / "data/digits/test.parquet")
    return json.dumps({"instances": [test[[f"pixel_{i}" for i in range(64)]].iloc[0].tolist()]})


def post_script(dest: Path, body: str) -> Path:
    """A wrk Lua script that POSTs ``body`` as JSON."""
    dest.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = '
        f'"application/json"\nwrk.body = {json.dumps(body)}\n'
    )
    return dest


def bench_env() -> dict[str, str]:
    """The environment every server here runs in: this checkout's code, TensorFlow quiet."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "CI": "1"}


def workload(tmp: Path) -> tuple[Path, str, Path]:
    """A trained workspace, one of its test examples as a predict body, and the wrk script that
    POSTs it: what every server benchmark loads its servers with."""
    repo = trained_workspace(tmp)
    body = sample_body(repo)
    return repo, body, post_script(tmp / "post.lua", body)


def model_server(
    mdir: Path, port: int, env: Mapping[str, str], **extra: str
) -> tuple[list[str], dict[str, str]]:
    """The project's model server serving ``mdir`` on ``port``: its command and environment
    (``extra``: more of the serving contract's variables)."""
    from pipelines.serving.contract import SERVER_MODULE, Env

    server_env = {
        **env,
        Env.MODEL_DIR: str(mdir),
        Env.PORT: str(port),
        Env.HOST: "127.0.0.1",
        **extra,
    }
    return [PY, "-m", SERVER_MODULE], server_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not come up")


@contextmanager
def running_server(
    cmd: list[str],
    env: dict[str, str],
    port: int,
    stop_timeout: float = 30,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``cmd`` on core 0, once it accepts connections on ``port``; stopped on the way out.
    (``python -m`` imports from ``cwd`` before PYTHONPATH: give the checkout to serve.)"""
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *cmd],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(port, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=stop_timeout)


def wrk(
    port: int, script: Path, seconds: int, connections: int, model: str = "digits"
) -> dict[str, float]:
    """One wrk run on core 1 against ``model``'s predict endpoint: requests/s, p50 and p99
    (ms)."""
    from pipelines.serving import contract

    cmd = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{contract.predict_path(model)}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        value, unit = float(m.group(1)), m.group(2)  # type: ignore[union-attr]
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"port {port}: {non2xx.group(1)} error responses under load")
    return {"rps": rps, "p50": pct("50"), "p99": pct("99")}


def wrk_medians(
    port: int, script: Path, seconds: int, connections: int, runs: int
) -> dict[str, float]:
    """The medians of ``runs`` wrk runs."""
    return medians([wrk(port, script, seconds, connections) for _ in range(runs)])


def medians(results: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The median of each figure wrk reports over several runs."""
    return {k: median([r[k] for r in results]) for k in ("rps", "p50", "p99")}
