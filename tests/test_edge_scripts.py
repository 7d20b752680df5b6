"""The device side (export/run_*.py, `memblocks predict`) runs without TensorFlow."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_memblocks.data import load_digits
from keras_memblocks.export import export_model
from keras_memblocks.models import vgg_like
from tests import layer_battery

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = """
import runpy, sys
for name in ("tensorflow", "keras", "keras_memblocks", "tf_keras"):
    sys.modules[name] = None  # any import of these now raises ImportError
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edge")
    model = vgg_like(
        "cifar10", width=4, blocks={"block": "cc", "after": "conv", "variant": "reduced"}
    )
    layer_battery.randomize_weights(model, scale=0.05)
    (_, _), (x_test, _) = load_digits(32)
    images = x_test[:4]
    labels = [f"label {i}" for i in range(10)]
    export_model(
        model, folder / "model", formats=("tflite", "onnx"), parity_inputs=images, labels=labels
    )
    np.save(folder / "digit.npy", images[0])
    return folder, int(np.argmax(model.predict(images[:1], verbose=0)[0]))


@pytest.mark.parametrize(
    "script,artifact", [("run_tflite.py", "model.tflite"), ("run_onnx.py", "model.onnx")]
)
def test_edge_script_classifies_without_tensorflow(script, artifact, exported):
    folder, keras_class = exported
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKED,
            str(ROOT / "export" / script),
            str(folder / "model" / artifact),
            str(folder / "digit.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["top1"]["class"] == keras_class
    assert len(output["top5"]) == 5


def test_wrong_image_shape_is_a_clear_error(exported, tmp_path):
    folder, _ = exported
    np.save(tmp_path / "small.npy", np.zeros((8, 8, 3), "float32"))
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "export" / "run_onnx.py"),
            str(folder / "model" / "model.onnx"),
            str(tmp_path / "small.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and "the model takes (32, 32, 3)" in result.stderr


PREDICT_WITHOUT_KERAS = """
import sys
for name in ("tensorflow", "keras", "tf_keras", "jax", "torch"):
    sys.modules[name] = None  # any import of these now raises ImportError
sys.argv[0] = "memblocks"  # as the console script runs it
from keras_memblocks.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("artifact", ["model.tflite", "model.onnx"])
def test_memblocks_predict_needs_no_keras_backend(artifact, exported, tmp_path):
    # The installed package's device side: `memblocks predict` with Keras,
    # TensorFlow and every backend blocked; labels from the file's metadata.
    folder, keras_class = exported

    def predict(*args):
        return subprocess.run(
            [sys.executable, "-c", PREDICT_WITHOUT_KERAS, "predict", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
        )

    result = predict(folder / "model" / artifact, folder / "digit.npy")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""  # not even LiteRT's INFO line for its delegate
    output = json.loads(result.stdout)
    assert output["top1"]["class"] == keras_class
    assert output["top1"]["label"] == f"label {keras_class}"
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    for bad, message in [
        (tmp_path / "broken.onnx", "does not load in onnxruntime"),
        (tmp_path / "model.pt", "a .tflite or .onnx file is needed"),
        (tmp_path / "missing.tflite", "No model file"),
    ]:
        if bad.suffix == ".pt":
            bad.write_bytes(b"x")
        result = predict(bad, folder / "digit.npy")
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
