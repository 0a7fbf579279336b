"""The post-deployment smoke test: ``python -m pipelines.serving.smoke --url URL ...``.

Run by the PostSync Job in the cluster, with the release's own image, against the active
Service. It passes only when the Service answers for the expected release (so traffic really
moved) and the model reproduces the self-test predictions recorded at packaging time.
Standard library only; exits 0 on success and 1 on failure, with one JSON line per attempt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pipelines.serving import contract
from pipelines.serving.contract import Env
from pipelines.serving.runtime import SIGNATURE, Signature, same_value


def _call(url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=data,
        method="GET" if data is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def check(url: str, model: str, release: str, sig: Signature) -> str:
    """An empty string when the Service is healthy, else what is wrong."""
    # TF Serving's status carries an int64 version, not the release: /readyz names it.
    status = _call(url + contract.model_path(model))["model_version_status"][0]
    serving = _call(url + contract.READY_PATH).get("release")
    if serving != release or status["state"] != "AVAILABLE":
        return f"the Service answers for release {serving} ({status['state']}), not {release}"
    if sig.self_test_instances:
        out = _call(url + contract.predict_path(model), {"instances": sig.self_test_instances})
        return _self_test_problem(sig, out["predictions"])
    return ""


def _self_test_problem(sig: Signature, predictions: list[Any]) -> str:
    """An empty string when the answers are the packaged self-test predictions: the same
    classes, or (a regressor) ``{"value": number}`` each, within runtime.VALUE_TOLERANCE."""
    if not sig.regressor:
        got = [p["class"] for p in predictions]
        if got != sig.self_test_classes:
            return f"self-test predictions {got} differ from the packaged {sig.self_test_classes}"
        return ""
    values = [contract.answered_value(p) for p in predictions]
    want = sig.self_test_values
    if len(values) != len(want) or not all(map(same_value, values, want)):
        return f"self-test values {values} differ from the packaged {want}"
    return ""


def main(argv: list[str] | None = None) -> int:
    """Run the smoke test; 0 when the Service serves the release and its predictions match."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="base URL of the Service")
    parser.add_argument("--model", required=True)
    parser.add_argument("--release", required=True, help="the release that must be serving")
    parser.add_argument("--attempts", type=int, default=30)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    model_dir = Path(os.environ.get(Env.MODEL_DIR, contract.MODEL_DIR))
    sig = Signature.from_json((model_dir / SIGNATURE).read_text(encoding="utf-8"))
    problem = ""
    for attempt in range(1, args.attempts + 1):
        try:
            problem = check(args.url.rstrip("/"), args.model, args.release, sig)
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        print(json.dumps({"attempt": attempt, "ok": not problem, "problem": problem}), flush=True)
        if not problem:
            return 0
        time.sleep(args.interval)
    return 1


if __name__ == "__main__":
    sys.exit(main())
