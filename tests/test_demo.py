"""`memblocks demo`, run as `make demo` runs it: its own process, the console a user sees."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MEMBLOCKS = str(Path(sys.executable).with_name("memblocks"))
# What C++ libraries print unasked: TensorFlow's start-up, LiteRT's delegate, the converter.
NOISE = ("I0000", "W0000", "E0000", "cuInit", "XNNPACK delegate", "fully_quantize", "absl::")


@pytest.mark.runs_first
def test_demo_trains_compares_exports_and_says_what_next(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    # One epoch: the demo's wiring and console, not its accuracies (make demo runs 15).
    result = subprocess.run(
        [MEMBLOCKS, "demo", "--epochs", "1", "--output-dir", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**env, "KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    assert not [word for word in NOISE if word in console], console[-3000:]
    table = (tmp_path / "demo" / "demo.md").read_text()
    for row in (
        "VGG-like (CC paper), standard",
        "reduced CC",
        "SR after module 3",
        "| tflite int8 |",
        "| onnx |",
        "| saved_model |",
    ):
        assert row in table
    export = tmp_path / "demo" / "export"
    assert (export / "int8" / "model_int8.tflite").exists()
    assert (export / "float32" / "manifest.json").exists()
    assert np.load(export / "digit.npy").shape == (32, 32, 3)
    # The hand-off: where everything is, then commands that work as printed.
    hand_off = result.stdout[result.stdout.index("=== done. Outputs:") :]
    for path in ("demo/demo.md", "demo/model_0/", "demo/export/float32/", "demo/export/int8/"):
        assert path in hand_off
    edge = next(line for line in hand_off.splitlines() if "run_tflite.py" in line).split()
    edge[1] = str(Path(__file__).resolve().parents[1] / edge[1])  # the repository's script
    ran = subprocess.run(
        [sys.executable, *edge[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert ran.returncode == 0 and '"top1"' in ran.stdout, ran.stderr[-2000:]
