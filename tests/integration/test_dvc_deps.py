"""Every pipelines/ module a DVC-cached stage runs is one of its deps in dvc.yaml: run each
stage for real and compare what Python loaded with what DVC watches. A module missing there
means an edit to it leaves stale metrics in the cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.core import dvcgraph
from tests.conftest import ROOT

PROBE = """
import sys
from pathlib import Path
from pipelines.config import load_model
import importlib
stage = importlib.import_module("pipelines.stages." + sys.argv[1])
stage.run(load_model(Path(sys.argv[2]), "digits"))
print("MODULES", *sorted(m for m in sys.modules if m.split(".")[0] == "pipelines"))
"""


def module_path(module: str) -> str:
    base = module.replace(".", "/")
    return f"{base}/__init__.py" if (ROOT / base / "__init__.py").is_file() else f"{base}.py"


@pytest.mark.parametrize("stage", dvcgraph.ORDER)
def test_every_module_a_stage_runs_is_a_dvc_dep(workspace: Path, stage: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, stage, str(workspace)],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("MODULES ")]
    loaded = {module_path(m) for m in line.split()[1:]}
    deps = set(
        yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][
            dvcgraph.stage_name(stage, "digits")
        ]["deps"]
    )
    assert f"pipelines/stages/{stage}.py" in loaded  # the probe ran what it should
    assert loaded - deps == set(), f"{stage} runs code dvc.yaml does not watch"
