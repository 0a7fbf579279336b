"""pipelines/evidence.py: one save/load of versioned, strict records, and one require()."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from pipelines import evidence
from pipelines.core.comparison import PairedComparison
from pipelines.errors import ConfigError, DataInvalid, EvidenceError, GateFailed
from pipelines.evidence import Blessing, PackagedRelease, ValidationSummary
from tests import util

SHA = "a" * 64


def _blessing(tmp_path: Path) -> Path:
    path = tmp_path / "gate" / Blessing.FILE
    evidence.save(path, util.blessing(SHA, "fp"))
    return path


def test_a_record_round_trips_with_its_field_names_and_version(tmp_path: Path) -> None:
    record = util.blessing(SHA, "fp")
    path = _blessing(tmp_path)
    assert evidence.load(path, Blessing) == record
    doc = json.loads(path.read_text())
    assert doc["version"] == evidence.SCHEMA_VERSION == 1
    assert doc["candidate"]["model_sha256"] == SHA
    assert doc["provenance"]["data_fingerprint"] == "fp"
    assert doc["baseline"] is None
    assert doc["comparison"] is None
    assert doc["rules"] == [
        {"rule": "min_accuracy", "passed": True, "reason": "accuracy 98% >= 90%"}
    ]


def test_a_paired_comparison_is_recorded_as_its_fields_and_read_back_as_itself(
    tmp_path: Path,
) -> None:
    """The blessing holds core's PairedComparison; its JSON keys are the ones always written."""
    comp = PairedComparison(
        n=10,
        candidate_accuracy=0.9,
        baseline_accuracy=0.8,
        delta=0.1,
        ci_low=-0.1,
        ci_high=0.3,
        b=2,
        c=1,
        p_value=1.0,
    )
    path = tmp_path / Blessing.FILE
    evidence.save(path, util.blessing(SHA, "fp").model_copy(update={"comparison": comp}))
    doc = json.loads(path.read_text())
    assert doc["comparison"] == asdict(comp)
    assert evidence.load(path, Blessing).comparison == comp
    doc["comparison"]["extra"] = 1
    path.write_text(json.dumps(doc))
    with pytest.raises(EvidenceError, match="extra"):
        evidence.load(path, Blessing)


def test_a_baseline_records_only_the_keys_of_its_origin(tmp_path: Path) -> None:
    base = evidence.Baseline(
        path="b.tflite",
        model_sha256=SHA,
        accuracy=0.9,
        metrics=evidence.SummaryMetrics(
            accuracy=0.9, macro_precision=0.9, macro_recall=0.9, macro_f1=0.9, per_class_recall={}
        ),
        source="--baseline",
    )
    assert set(base.model_dump(mode="json")) == {
        "path",
        "model_sha256",
        "accuracy",
        "metrics",
        "source",
    }


def test_records_are_frozen() -> None:
    record = util.blessing(SHA, "fp")
    with pytest.raises(ValueError, match="frozen"):
        record.blessed = False  # type: ignore[misc]


@pytest.mark.parametrize("version", [None, 0, 2, "1"])
def test_a_record_of_another_schema_version_is_refused(tmp_path: Path, version: object) -> None:
    path = _blessing(tmp_path)
    doc = json.loads(path.read_text())
    if version is None:
        del doc["version"]
    else:
        doc["version"] = version
    path.write_text(json.dumps(doc))
    with pytest.raises(EvidenceError, match="schema version") as err:
        evidence.load(path, Blessing)
    assert str(path) in str(err.value)
    assert "mlops gate" in str(err.value.hint)


def test_unknown_fields_are_refused(tmp_path: Path) -> None:
    path = _blessing(tmp_path)
    doc = json.loads(path.read_text())
    doc["candidate"]["blessed_by"] = "me"
    path.write_text(json.dumps(doc))
    with pytest.raises(EvidenceError, match=r"candidate\.blessed_by: unknown field") as err:
        evidence.load(path, Blessing)
    assert str(path) in str(err.value)


def test_a_missing_field_is_refused(tmp_path: Path) -> None:
    path = _blessing(tmp_path)
    doc = json.loads(path.read_text())
    del doc["provenance"]["data_fingerprint"]
    path.write_text(json.dumps(doc))
    with pytest.raises(EvidenceError, match=r"provenance\.data_fingerprint: Field required"):
        evidence.load(path, Blessing)


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    path = _blessing(tmp_path)
    path.write_text(path.read_text()[:40])
    with pytest.raises(EvidenceError, match="is not valid JSON") as err:
        evidence.load(path, Blessing)
    assert str(path) in str(err.value)


def test_a_missing_file_says_which_stage_writes_it(tmp_path: Path) -> None:
    with pytest.raises(EvidenceError, match="no release record at") as err:
        evidence.load(tmp_path / PackagedRelease.FILE, PackagedRelease)
    assert err.value.hint == "run `mlops package` first"


def test_require_accepts_the_record_for_the_artifact_on_disk(tmp_path: Path) -> None:
    path = _blessing(tmp_path)
    record = evidence.require(path, Blessing, model_sha256=SHA, data_fingerprint="fp")
    assert record.blessed


@pytest.mark.parametrize(
    ("current", "message"),
    [
        ({"model_sha256": "b" * 64}, "different model artifact"),
        ({"data_fingerprint": "other"}, "other data than the current dataset"),
        ({"gate_settings": "other"}, r"gate rules in model\.yaml changed"),
    ],
)
def test_require_refuses_a_record_for_something_else(
    tmp_path: Path, current: dict[str, str], message: str
) -> None:
    path = _blessing(tmp_path)
    with pytest.raises(EvidenceError, match=message) as err:
        evidence.require(path, Blessing, **current)
    # One class, one exit code, for every guard: a usage error (re-run the stage).
    assert type(err.value) is EvidenceError
    assert isinstance(err.value, ConfigError)
    assert err.value.exit_code == EvidenceError.exit_code == 2
    assert "mlops gate" in str(err.value.hint)


def test_require_keeps_a_no_as_a_failed_check(tmp_path: Path) -> None:
    path = tmp_path / Blessing.FILE
    evidence.save(path, util.blessing(SHA, "fp").model_copy(update={"blessed": False}))
    with pytest.raises(GateFailed, match="not blessed") as err:
        evidence.require(path, Blessing, model_sha256=SHA)
    assert err.value.exit_code == 1


def test_require_refuses_data_that_failed_validation(tmp_path: Path) -> None:
    path = tmp_path / ValidationSummary.FILE
    evidence.save(path, util.validation_summary("fp").model_copy(update={"success": False}))
    with pytest.raises(DataInvalid, match="failed validation") as err:
        evidence.require(path, ValidationSummary, data_fingerprint="fp")
    assert err.value.exit_code == 1


def test_evidence_imports_nothing_the_report_job_does_not_install() -> None:
    """`mlops report` reads these records with only the `report` extra installed."""
    code = (
        "import sys, pipelines.evidence; "
        "print(' '.join(m for m in ('numpy', 'pandas', 'tensorflow', 'great_expectations') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""


def _profile() -> evidence.Profile:
    return evidence.Profile(
        model="digits",
        model_sha256=SHA,
        rows=10,
        validation_rows=5,
        features=["a", "b"],
        mean=[1.0, 0.0],
        stddev=[0.5, 0.16],
        stddev_floor=0.16,
        bins=[[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]],
        classes=[0, 1],
        class_ratio=[0.25, 0.75],
        anomaly=evidence.AnomalyModel(
            center=[1.0, 0.0],
            precision=[[4.0, 0.0], [0.0, 2.0]],
            shrinkage=0.1,
            threshold=3.5,
            false_alarm_rate=0.01,
            validation_rate=0.0,
        ),
        drift=evidence.DriftCalibration(
            window_instances=200,
            false_alarm_rate=0.01,
            windows=100,
            seed=0,
            feature_effect=0.4,
            drifted_fraction=0.1,
            prediction_psi=0.05,
            psi_floor=1e-4,
        ),
        provenance=evidence.ModelProvenance(
            git_commit="c" * 40,
            git_dirty=False,
            data_md5="",
            params_sha256="p",
            created="2026-01-01T00:00:00+00:00",
            mlops_version="0",
            model_sha256=SHA,
        ),
    )


def test_a_profile_round_trips_and_the_server_reads_the_same_file(tmp_path: Path) -> None:
    import hashlib

    from pipelines.serving.reference import load_reference

    path = tmp_path / "train" / evidence.Profile.FILE
    evidence.save(path, _profile())
    assert evidence.load(path, evidence.Profile) == _profile()
    assert evidence.require(path, evidence.Profile, model_sha256=SHA) == _profile()
    with pytest.raises(EvidenceError, match="not the profile"):
        evidence.require(path, evidence.Profile, model_sha256="b" * 64)
    ref = load_reference(path, hashlib.sha256(path.read_bytes()).hexdigest())
    assert ref.features == ["a", "b"]
    assert ref.drift_thresholds == {
        "feature_effect": 0.4,
        "drifted_fraction": 0.1,
        "prediction_psi": 0.05,
    }
    assert ref.scores(np.array([[1.0, 0.0], [2.0, 0.0]])).tolist() == [0.0, 2.0]
    with pytest.raises(ValueError, match="sha256"):
        load_reference(path, "0" * 64)
    summary = _profile().summary("f" * 64)
    assert (summary.sha256, summary.anomaly_threshold, summary.window_instances) == (
        "f" * 64,
        3.5,
        200,
    )
