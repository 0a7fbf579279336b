from pathlib import Path

import yaml

from pipelines.config import load_model, model_names
from pipelines.core import dvcgraph
from pipelines.pipeline import stage_code

ROOT = Path(__file__).resolve().parents[3]
CODE = {
    "validate": ["pipelines/v.py"],
    "train": ["pipelines/t.py", "pipelines/a.py"],
    "evaluate": [],
}


def test_render_is_stable_and_sorted() -> None:
    a = dvcgraph.render({"b": "arch.py", "a": "architecture.py"}, CODE)
    assert a == dvcgraph.render({"a": "architecture.py", "b": "arch.py"}, CODE)
    stages = list(yaml.safe_load(a)["stages"])
    assert stages == ["validate-a", "train-a", "evaluate-a", "validate-b", "train-b", "evaluate-b"]


def test_train_depends_on_its_architecture_code_and_params() -> None:
    train = yaml.safe_load(dvcgraph.render({"m": "net.py"}, CODE))["stages"]["train-m"]
    assert train["deps"] == [
        "data/m",
        "artifacts/m/validate",
        "models/m/net.py",
        "pipelines/a.py",
        "pipelines/t.py",
    ]
    # The profile's settings retrain (train writes the profile); the latency SLO does not.
    assert train["params"] == [
        {
            "models/m/model.yaml": [
                "data",
                "training",
                "export",
                "monitoring.window_instances",
                "monitoring.false_alarm_rate",
                "monitoring.anomaly_false_alarm_rate",
                "monitoring.bootstrap_windows",
                "monitoring.seed",
            ]
        }
    ]
    assert train["outs"] == [{"artifacts/m/train": {"cache": False}}]


def test_a_stages_code_is_what_its_module_imports() -> None:
    """Derived, so the modules that build the model input cannot be forgotten again."""
    code = stage_code(ROOT)
    for stage in dvcgraph.ORDER:
        assert f"pipelines/stages/{stage}.py" in code[stage]
        assert "pipelines/stages/__init__.py" in code[stage]
        assert {
            "pipelines/config/__init__.py",
            "pipelines/config/loading.py",
            "pipelines/config/schema.py",
            "pipelines/config/settings.py",
        } <= set(code[stage])
    # evaluate scores train's exported model (a data dependency): it builds the model input
    # but not the model, so it no longer depends on modelcode.py through importing train.
    assert {"pipelines/adapters/datasets.py", "pipelines/adapters/modelcode.py"} <= set(
        code["train"]
    )
    assert "pipelines/adapters/datasets.py" in code["evaluate"]
    assert all((ROOT / path).is_file() for paths in code.values() for path in paths)


def test_committed_dvc_yaml_is_current() -> None:
    models = {n: load_model(ROOT, n).model.training.architecture for n in model_names(ROOT)}
    assert (ROOT / "dvc.yaml").read_text() == dvcgraph.render(models, stage_code(ROOT)), (
        "dvc.yaml is stale: run `mlops run` (or regenerate it) and commit the result"
    )
