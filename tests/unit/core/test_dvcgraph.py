from pathlib import Path

import yaml

from pipelines.config import load_model, model_names
from pipelines.core import dvcgraph

ROOT = Path(__file__).resolve().parents[3]


def test_render_is_stable_and_sorted() -> None:
    a = dvcgraph.render({"b": "arch.py", "a": "architecture.py"})
    assert a == dvcgraph.render({"a": "architecture.py", "b": "arch.py"})
    stages = list(yaml.safe_load(a)["stages"])
    assert stages == ["validate-a", "train-a", "evaluate-a", "validate-b", "train-b", "evaluate-b"]


def test_train_depends_on_its_architecture_and_params() -> None:
    train = yaml.safe_load(dvcgraph.render({"m": "net.py"}))["stages"]["train-m"]
    assert "models/m/net.py" in train["deps"]
    assert "artifacts/m/validate" in train["deps"]
    assert train["params"] == [{"models/m/model.yaml": ["data", "training", "export"]}]
    assert train["outs"] == [{"artifacts/m/train": {"cache": False}}]


def test_committed_dvc_yaml_is_current() -> None:
    models = {n: load_model(ROOT, n).model.training.architecture for n in model_names(ROOT)}
    assert (ROOT / "dvc.yaml").read_text() == dvcgraph.render(models), (
        "dvc.yaml is stale: run `mlops run` (or regenerate it) and commit the result")
