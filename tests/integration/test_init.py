"""`mlops init` on a fork's table: what it writes, that a re-run changes nothing, and each
refusal (its exit code and message), with nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.cli import main
from pipelines.config import load_model
from tests.conftest import copy_repo


def churn_table(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Numeric, 0/1, categorical and nullable columns, and a label the features explain."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, rows)
    monthly = rng.normal(70, 20, rows).round(2)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    rating = np.where(rng.random(rows) < 0.1, np.nan, rng.integers(1, 6, rows).astype(float))
    score = -0.05 * tenure + 0.04 * (monthly - 70) + np.where(plan == "pro", 1.5, 0.0)
    churned = (score + rng.normal(0, 0.4, rows) > -1.2).astype(int)
    return pd.DataFrame(
        {
            "tenure": tenure,
            "monthly": monthly,
            "plan": plan,
            "autopay": rng.integers(0, 2, rows),
            "rating": rating,
            "churned": churned,
        }
    )


def value_table(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """The churn table with a regression target the features explain: a customer's value."""
    df = churn_table(rows, seed)
    rng = np.random.default_rng(seed + 1)
    value = (
        200
        + 8 * df["tenure"]
        + 3 * (df["monthly"] - 70)
        + np.where(df["plan"] == "pro", 150.0, 0.0)
        + rng.normal(0, 25, rows)
    )
    return df.assign(value=value.round(2))


@pytest.fixture
def fork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = copy_repo(tmp_path / "fork")
    (root / "datasets").mkdir(parents=True)
    churn_table().to_csv(root / "datasets/churn.csv", index=False)
    monkeypatch.chdir(root)
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in [
            root / "dvc.yaml",
            root / ".gitlab-ci.yml",
            root / "Jenkinsfile",
            *sorted((root / "models").rglob("*")),
        ]
        if p.is_file()
    }


def test_init_writes_a_valid_model_and_its_dvc_stages(
    fork: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "churn", "--data", "datasets/churn.csv", "--label", "churned"]) == 0
    out = capsys.readouterr().out
    assert "300 rows; 5 features" in out
    assert "task classification" in out
    assert "mlops run --model churn" in out
    ws = load_model(fork, "churn")  # the files validate as any model.yaml does
    assert ws.model.task == "classification"
    assert ws.model.data.label.classes == [0, 1]
    assert isinstance(ws.model.data.features, list)
    by = {f.name: f for f in ws.model.data.features}
    assert by["plan"].type == "categorical"
    assert by["plan"].values == ["basic", "plus", "pro"]
    assert by["rating"].nullable
    assert by["autopay"].type == "int"
    assert (by["autopay"].min, by["autopay"].max) == (0.0, 1.0)
    assert {p.name for p in (fork / "models/churn").iterdir()} == {
        "model.yaml",
        "architecture.py",
        "expectations.py",
    }
    assert "init: added to .gitlab-ci.yml's model matrix" in out
    gitlab = yaml.safe_load((fork / ".gitlab-ci.yml").read_text())
    assert gitlab[".per_model"]["parallel"]["matrix"] == [
        {"MODEL": ["churn", "diabetes", "digits"]}
    ]
    assert "init: added to Jenkinsfile's model matrix" in out
    assert "values 'churn', 'diabetes', 'digits'\n" in (fork / "Jenkinsfile").read_text()
    assert "git add models/churn dvc.yaml .gitlab-ci.yml Jenkinsfile" in out
    assert "--substitutions=_MODEL=churn," in out  # its Cloud Build triggers
    stages = yaml.safe_load((fork / "dvc.yaml").read_text())["stages"]
    assert {"validate-churn", "train-churn", "evaluate-churn", "train-digits"} <= set(stages)

    before = tree(fork)
    assert main(["init", "churn", "--data", "datasets/churn.csv", "--label", "churned"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert tree(fork) == before


def test_init_makes_a_regressor_that_gets_through_the_gate_unedited(
    fork: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value_table().to_csv(fork / "datasets/value.csv", index=False)
    assert main(["init", "value", "--data", "datasets/value.csv", "--label", "value"]) == 0
    out = capsys.readouterr().out
    assert "task regression" in out
    ws = load_model(fork, "value")
    assert ws.model.task == "regression"
    assert ws.model.classes == []
    label = ws.model.data.label
    observed = value_table()["value"]
    assert label.min is not None
    assert label.max is not None
    assert label.min < observed.min()  # widened by the margin
    assert label.max > observed.max()
    assert ws.model.gate.thresholds.of("regression") == {"min_r2": 0.0}
    assert ws.model.tuning is not None
    assert ws.model.tuning.metric == "val_loss"

    assert main(["run", "--model", "value", "--until", "gate"]) == 0, capsys.readouterr().err
    blessing = yaml.safe_load((fork / "artifacts/value/gate/blessing.json").read_text())
    assert blessing["blessed"] is True
    assert blessing["candidate"]["task"] == "regression"
    assert blessing["candidate"]["r2"] > 0.5  # the features explain the target
    assert (fork / "artifacts/value/evaluate/residuals.png").is_file()


def test_a_hand_edited_folder_needs_force(fork: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["init", "churn", "--data", "datasets/churn.csv", "--label", "churned"]
    assert main(args) == 0
    path = fork / "models/churn/model.yaml"
    path.write_text(path.read_text().replace("epochs: 40", "epochs: 7"))
    edited = tree(fork)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "models/churn exists and is not what init would write" in err
    assert "--force" in err
    assert tree(fork) == edited
    assert main([*args, "--force"]) == 0
    assert "epochs: 40" in path.read_text()


@pytest.mark.parametrize(
    ("edit", "args", "code", "words"),
    [
        (None, ["--label", "nope"], 2, "--label 'nope' is not a column"),
        (lambda df: df.head(20), [], 1, "the table has 20 rows, fewer than the 50"),
        (lambda df: df.assign(churned=1), [], 1, "the label 'churned' is constant"),
        (
            lambda df: df.assign(
                customer_id=np.arange(len(df)),
                signup=pd.date_range("2024-01-01", periods=len(df)).astype(str),
                note=[f"text {i % 90}" for i in range(len(df))],
            ),
            [],
            1,
            "customer_id: a unique, increasing integer per row, an identifier",
        ),
        (None, ["--exclude", "nope"], 1, "--exclude names columns the table does not have"),
        (None, ["--task", "regression", "--label", "plan"], 1, "no regression target"),
        (None, ["--label", "plan"], 2, "holds text or true/false ('basic', 'plus', 'pro')"),
    ],
)
def test_each_refusal_writes_nothing(
    fork: Path,
    capsys: pytest.CaptureFixture[str],
    edit: object,
    args: list[str],
    code: int,
    words: str,
) -> None:
    if callable(edit):
        edit(churn_table()).to_csv(fork / "datasets/churn.csv", index=False)
    before = tree(fork)
    argv = ["init", "churn", "--data", "datasets/churn.csv", "--label", "churned", *args]
    # A later --label wins in argparse: the cases above override it.
    assert main(argv) == code
    err = capsys.readouterr().err
    assert words in err
    assert tree(fork) == before
    assert not (fork / "models/churn").exists()


def test_every_unusable_column_is_named(fork: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = churn_table().assign(
        customer_id=np.arange(300),
        signup=pd.date_range("2024-01-01", periods=300).astype(str),
        note=[f"text {i % 90}" for i in range(300)],
        country="FR",
    )
    df.to_csv(fork / "datasets/churn.csv", index=False)
    assert main(["init", "churn", "--data", "datasets/churn.csv", "--label", "churned"]) == 1
    err = capsys.readouterr().err
    for line in ("customer_id:", "signup: holds dates", "note: free text", "country: constant"):
        assert f"  - {line}" in err
    assert "--exclude" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["init", "Churn", "--data", "datasets/churn.csv", "--label", "churned"], "DNS label"),
        (["init", "churn", "--data", "../x.csv", "--label", "churned"], "--data '../x.csv'"),
        (["init", "churn", "--data", "/etc/passwd", "--label", "churned"], "absolute"),
        (["init", "churn", "--data", "datasets/none.csv", "--label", "churned"], "no such file"),
    ],
)
def test_bad_arguments(
    fork: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    before = tree(fork)
    assert main(argv) == 2
    assert words in capsys.readouterr().err
    assert tree(fork) == before


def _dvc(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=True, timeout=120)


def test_init_records_the_table_with_dvc(
    fork: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = tmp_path / "dvc-remote"
    _dvc(fork, "remote", "add", "-d", "storage", str(remote))
    args = ["init", "churn", "--data", "datasets/churn.csv", "--label", "churned", "--dvc"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pushed to the DVC remote 'storage'" in out
    assert "datasets/churn.csv.dvc datasets/.gitignore" in out
    assert (fork / "datasets/churn.csv.dvc").is_file()
    assert (fork / "datasets/.gitignore").read_text() == "/churn.csv\n"
    assert [p for p in remote.rglob("*") if p.is_file()]
    assert "git rm --cached datasets/churn.csv" in out
    # Again: nothing to write, the push is a no-op, and it is not taken for a hand edit.
    assert main(args) == 0
    assert "already what init writes" in capsys.readouterr().out
    source = load_model(fork, "churn").model.data.source
    assert getattr(source, "dvc", False) is True


def test_init_with_dvc_but_no_remote_writes_nothing(
    fork: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(fork)
    args = ["init", "churn", "--data", "datasets/churn.csv", "--label", "churned", "--dvc"]
    assert main(args) == 2
    assert "no default DVC remote is configured" in capsys.readouterr().err
    assert tree(fork) == before
    assert not (fork / "datasets/churn.csv.dvc").exists()


def test_a_hand_edited_jenkins_matrix_is_reported_not_guessed(
    fork: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jenkinsfile = fork / "Jenkinsfile"
    edited = jenkinsfile.read_text().replace("values 'diabetes', 'digits'", "values MODELS")
    jenkinsfile.write_text(edited)
    assert main(["init", "churn", "--data", "datasets/churn.csv", "--label", "churned"]) == 0
    out = capsys.readouterr().out
    assert "init: Jenkinsfile has no single MODEL axis `values '...'` line: add the model" in out
    assert jenkinsfile.read_text() == edited
    assert "init: added to .gitlab-ci.yml's model matrix" in out
