#!/usr/bin/env python3
"""Print the CI matrix of models: `models=["digits", ...]`, one entry per folder of models/.

GitHub's ci.yml and release.yml append this line to $GITHUB_OUTPUT (`make -s ci-models`), and
their per-model jobs take `matrix.model` from it, so a new folder is a new matrix entry with no
edit to the workflows. Every name must be a model name (a DNS label: what check-inputs, the
schema, Kubernetes and the registry accept); one that is not fails the job (exit 2) before any
job uses it as MODEL. An empty models/ fails too: a matrix with no entry would skip every
per-model job, and the required check would pass without anything being judged.

It runs with the runner's own python3 before anything is installed: it imports only the
standard library and pipelines/core/changes.py, which itself needs nothing else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.core.changes import MODELS_DIR, invalid_model_names  # noqa: E402 - after sys.path


def main() -> int:
    folder = ROOT / MODELS_DIR
    # What the shell's models/*/ lists (check-inputs.sh): hidden folders are not models.
    found = folder.iterdir() if folder.is_dir() else iter(())
    names = sorted(p.name for p in found if p.is_dir() and not p.name.startswith("."))
    bad = invalid_model_names(names)
    if bad:
        shown = ", ".join(json.dumps(n) for n in bad)
        print(
            f"ci-models: {shown} under {MODELS_DIR}/ cannot be a model name; rename the folder "
            "to lower-case letters, digits and '-' (a DNS label, at most 63 characters)",
            file=sys.stderr,
        )
        return 2
    if not names:
        print(f"ci-models: no model folder under {MODELS_DIR}/", file=sys.stderr)
        return 2
    print(f"models={json.dumps(names, separators=(',', ':'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
