"""`memblocks demo`, run as `make demo` runs it: its own process, the console a user sees."""

import json
import os
import subprocess
import sys
import zipfile
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
        "One seed on 450 held-out digits",
        "Export of VGG-like (CC paper), reduced CC after every conv",
        "Export of ResNet-18 (width 16), SR after module 3",
    ):
        assert row in table
    export = tmp_path / "demo" / "export"
    # The nets with a block are exported, whichever scored best.
    for block, layer in (("cc", "ContextualConvBlock2D"), ("sr", "SqueezeAndRemember2D")):
        assert (export / block / "int8" / "model_int8.tflite").exists()
        manifest = json.loads((export / block / "float32" / "manifest.json").read_text())
        assert set(manifest["formats"]) == {"saved_model", "tflite", "onnx"}
        with zipfile.ZipFile(
            tmp_path / "demo" / f"model_{1 if block == 'cc' else 3}" / "best.keras"
        ) as f:
            assert layer in f.read("config.json").decode()
    assert np.load(export / "digit.npy").shape == (32, 32, 3)
    # The hand-off: where everything is, then commands that work as printed.
    hand_off = result.stdout[result.stdout.index("=== done. Outputs:") :]
    for path in ("demo/demo.md", "demo/model_0/", "demo/export/cc/", "demo/export/sr/"):
        assert path in hand_off
    # Each device command as printed, in a shell whose PATH does not hold this
    # environment's bin folder: the TFLite and the ONNX file, labelled.
    plain = {**env, "PATH": "/usr/bin:/bin"}
    predicts = [line.strip() for line in hand_off.splitlines() if " predict " in line]
    assert len(predicts) == 2
    for line in predicts:
        ran = subprocess.run(
            line, shell=True, cwd=tmp_path, capture_output=True, text=True, env=plain
        )
        assert ran.returncode == 0 and '"label": "' in ran.stdout, ran.stderr[-2000:]
    export_line = next(line for line in hand_off.splitlines() if " export " in line).strip()
    ran = subprocess.run(
        export_line, shell=True, cwd=tmp_path, capture_output=True, text=True, env=plain
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
