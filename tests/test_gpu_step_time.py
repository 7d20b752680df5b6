"""benchmarks/gpu_step_time.py at CPU sizes, so the GPU benchmark never rots.

It must run where only Keras, JAX or PyTorch and this package are installed,
which `make test`'s TensorFlow-free JAX run checks.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

# The benchmark is for JAX and PyTorch; TensorFlow has benchmarks/block_overhead.py.
pytestmark = [pytest.mark.every_backend, pytest.mark.backends("jax", "torch")]

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_step_time_runs_at_tiny_sizes(tmp_path):
    output = tmp_path / "gpu.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_step_time",
            "--tiny",
            "--samples",
            "2",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--pairs",
            "vgg_like_cc",
            "--policies",
            "mixed_bfloat16",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend(), "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    machine = results["machine"]
    assert machine["backend"] == keras.backend.backend() and machine["gpu"] is None
    assert machine["cpu"] and machine["cpu_cores"] >= 1 and "keras" in machine["versions"]
    assert [(run["pair"], run["policy"]) for run in results["runs"]] == [
        ("vgg_like_cc", "mixed_bfloat16")
    ]
    for run in results["runs"]:
        # The block adds parameters; both models really are different.
        assert run["parameters"]["block"] > run["parameters"]["plain"]
        for mode in ("train", "inference"):
            entry = run[mode]
            assert entry["block"]["median_ms"] > 0 and entry["plain"]["median_ms"] > 0
            assert entry["ratio_median"] > 0 and entry["target"] >= 1.02
    assert "| vgg_like_cc | mixed_bfloat16 | train |" in result.stdout


def test_without_a_gpu_it_asks_for_tiny():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_step_time"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "KERAS_BACKEND": keras.backend.backend(),
            "JAX_PLATFORMS": "cpu",
            "CUDA_VISIBLE_DEVICES": "",
        },
    )
    assert result.returncode == 2
    assert "no GPU visible" in result.stderr and "--tiny" in result.stderr


def test_the_resnet50_pair_differs_by_the_sr_block_alone():
    # Timing ResNet50 at tiny size takes a minute on a CPU; its models are
    # built here instead (the timing code is the VGG-like pair's).
    from benchmarks import gpu_step_time

    block_builder, plain_builder = gpu_step_time.PAIRS["resnet50_sr"]
    sizes = gpu_step_time.SIZES["resnet50_sr"]
    assert sizes["full"] == dict(shape=(224, 224, 3), classes=1000, batch=128)
    block, plain = block_builder(sizes["tiny"]), plain_builder(sizes["tiny"])
    sr = block.get_layer("module3_sr")
    assert (sr.num_memory_blocks, sr.hidden_units) == (10, 16)
    assert block.count_params() - plain.count_params() == sr.count_params()
