"""export/run_tflite.py and export/run_onnx.py run without TensorFlow."""

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
    export_model(model, folder / "model", formats=("tflite", "onnx"), parity_inputs=images)
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
