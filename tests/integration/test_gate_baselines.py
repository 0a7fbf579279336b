"""A baseline the gate cannot compare with the candidate is refused with exit 2 and a message
naming the mismatch, never a traceback; and the refusal leaves no blessing behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines import evidence
from pipelines.cli import main
from pipelines.config import load_model
from pipelines.errors import EvidenceError
from pipelines.stages import gate


def _tflite(tf: Any, model: Any, integer: Any = None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if integer is not None:  # full-integer quantisation, as for a microcontroller
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [np.random.default_rng(i).random((1, *shape), dtype=np.float32)] for i in range(8)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = integer
        converter.inference_output_type = integer
    return bytes(converter.convert())


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real TFLite files that differ from the digits candidate in one way each (tiny models:
    conversion takes a second, no training needed to be incomparable)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    keras = tf.keras
    layers = keras.layers

    def dense(inputs: Any, classes: int = 10) -> Any:
        x = layers.Flatten()(inputs)
        return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x))

    image = (8, 8, 1)
    models: dict[str, bytes] = {
        "flat input": _tflite(tf, dense(keras.Input((64,)))),
        "other image shape": _tflite(tf, dense(keras.Input((16, 4, 1)))),
        "five classes": _tflite(tf, dense(keras.Input(image), classes=5)),
        "int8 quantised": _tflite(tf, dense(keras.Input(image)), integer=tf.int8),
        "uint8 quantised": _tflite(tf, dense(keras.Input(image)), integer=tf.uint8),
    }
    ints = keras.Input(image, dtype="int32")
    models["int32 input"] = _tflite(tf, dense(ints))
    ints = keras.Input(image)
    scores = layers.Dense(10)(layers.Flatten()(ints))
    models["int32 output"] = _tflite(
        tf, keras.Model(ints, layers.Lambda(lambda t: tf.cast(t * 100, tf.int32))(scores))
    )
    good = models["five classes"]
    models["empty file"] = b""
    models["truncated file"] = good[: len(good) // 2]
    models["cut at the end"] = good[:-16]
    models["not a TFLite file"] = b"\x89PNG\r\n\x1a\n" + bytes(200)
    folder = tmp_path_factory.mktemp("baselines")
    paths = {}
    for name, data in models.items():
        paths[name] = folder / (name.replace(" ", "_") + ".tflite")
        paths[name].write_bytes(data)
    return paths


MISMATCH = {
    "flat input": "input shape: baseline [64], candidate [8, 8, 1]",
    "other image shape": "input shape: baseline [16, 4, 1], candidate [8, 8, 1]",
    "five classes": "the baseline predicts 5 classes (output [5]); this model has 10",
    "int8 quantised": "the baseline's input is quantised (int8[8, 8, 1] (quantised))",
    "uint8 quantised": "the baseline's output is quantised (uint8[10] (quantised))",
    "int32 input": "input dtype: baseline int32, candidate float32",
    "int32 output": "output dtype: baseline int32, candidate float32",
    "empty file": "is an empty file (0 bytes)",
    "truncated file": "is not a loadable TFLite model (truncated or corrupt?)",
    "cut at the end": "is not a loadable TFLite model (truncated or corrupt?)",
    "not a TFLite file": "is not a TFLite model (no b'TFL3' identifier at byte 4)",
}


@pytest.mark.parametrize("case", list(MISMATCH))
def test_incomparable_baseline_is_refused_and_leaves_no_blessing(
    case: str,
    baselines: dict[str, Path],
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = load_model(workspace, "digits")
    assert gate.run(ws).blessed  # an earlier blessing for this very candidate
    monkeypatch.chdir(workspace)
    assert main(["gate", "--baseline", str(baselines[case])]) == 2
    out, err = capsys.readouterr()
    assert MISMATCH[case] in err, err
    assert "Traceback" not in out + err
    # The refused comparison leaves nothing a later stage could take for a blessing.
    assert not (workspace / "artifacts/digits/gate").exists()
    with pytest.raises(EvidenceError, match="no blessing"):
        evidence.require_blessing(ws)
    assert main(["package"]) == 2
    assert "no blessing" in capsys.readouterr().err


def test_a_folder_is_read_as_a_bundle_never_as_a_model_file(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder given as --baseline is a bundle (`mlops baseline export`), whatever its name:
    without a record it holds no baseline, and the blessing says why (on_missing_baseline)."""
    monkeypatch.chdir(workspace)
    folder = workspace / "a-folder.tflite"
    folder.mkdir()
    assert main(["gate", "--baseline", str(folder)]) == 0
    assert f"no baseline bundle in {folder}" in capsys.readouterr().out
