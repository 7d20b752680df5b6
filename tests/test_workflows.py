"""A user's whole path, each step in its own process, as a user runs it.

`memblocks train` (the installed command) -> `keras.saving.load_model` in a
fresh interpreter that imports only keras and keras_memblocks -> `memblocks
export` -> `export/run_tflite.py` and `export/run_onnx.py` on an image file,
agreeing with Keras. Then the mistakes a user makes: each gets one line and
exit code 2, never a traceback.
"""

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBLOCKS = str(Path(sys.executable).with_name("memblocks"))
EDGE = {"tflite": ROOT / "export" / "run_tflite.py", "onnx": ROOT / "export" / "run_onnx.py"}
CONSOLE_NOISE = ("cuInit", "I0000", "absl::InitializeLog", "Traceback")


def run(command, cwd, expect=0, timeout=1200, backend="tensorflow"):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONUNBUFFERED="1", KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == expect, (
        f"{command}\nexit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


# Step 2, in its own interpreter: load the trained model the way a user
# would (safe_mode, no custom_objects), and record its prediction on the
# image the edge scripts get. For the digits, pick the held-out digit the
# model is surest of, written as a PNG (what the edge scripts read).
LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    import keras_memblocks

    model_path, image_path, out_path = sys.argv[1:4]
    model = keras.saving.load_model(model_path)
    assert model.optimizer is not None  # the compiled optimizer came back too
    if image_path.endswith(".png"):
        from PIL import Image
        from keras_memblocks.data import load_digits
        (_, _), (x_test, _) = load_digits(model.input.shape[1], channels=3)
        candidates = np.round(x_test[:64] * 255).astype("uint8")
        probabilities = model.predict(candidates / 255.0, verbose=0)
        top2 = np.sort(probabilities, axis=-1)[:, -2:]
        best = int(np.argmax(top2[:, 1] - top2[:, 0]))
        Image.fromarray(candidates[best]).save(image_path)
        image = np.asarray(Image.open(image_path).convert("RGB"), dtype="float32") / 255.0
    else:
        image = np.load(image_path)
    outputs = model.predict(image[None], verbose=0)
    if isinstance(outputs, dict):
        outputs = outputs["predictions"]
    np.save(out_path, np.asarray(outputs[0], dtype="float32"))
    print(json.dumps({"optimizer": type(model.optimizer).__name__,
                      "policy": model.layers[-1].dtype_policy.name}))
""")

SEGMENTATION_ARGS = {
    "num_classes": 19,
    "input_shape": [32, 64, 3],
    "auxiliary_head": True,
    "blocks": {"block": "sr", "after": 2, "num_memory_blocks": 2},
}
STAND_IN = [
    "--stand-in-data",
    "16",
    "--batch-size",
    "4",
    "--epochs",
    "1",
    "--max-steps-per-epoch",
    "2",
]
# (cell id, train arguments, image shape or None for the digits, segmentation)
CELLS = {
    "digits": (["--recipe", "digits", "--epochs", "4"], None, False),
    # Trained on JAX (from the same tf.data pipeline), exported through TensorFlow.
    "digits-jax": (["--recipe", "digits", "--epochs", "4"], None, False),
    "digits-mixed-precision": (
        ["--recipe", "digits", "--epochs", "4", "--mixed-precision"],
        None,
        False,
    ),
    "sr-cifar100": (["--recipe", "sr-cifar100", *STAND_IN], (32, 32, 3), False),
    "sr-cityscapes": (
        [
            "--recipe",
            "sr-cityscapes",
            *STAND_IN[:2],
            "--batch-size",
            "2",
            *STAND_IN[4:],
            "--set",
            "crop_size=[32,64]",
            "--model-args",
            json.dumps(SEGMENTATION_ARGS),
        ],
        (32, 64, 3),
        True,
    ),
    "sr-cifar10": (["--recipe", "sr-cifar10", *STAND_IN], (32, 32, 3), False),
    "cc-cifar100": (["--recipe", "cc-cifar100", *STAND_IN], (32, 32, 3), False),
    "sr-imagenet": (
        ["--recipe", "sr-imagenet", *STAND_IN[:2], "--batch-size", "2", *STAND_IN[4:]],
        (224, 224, 3),
        False,
    ),
    "digits-jit-compile": (["--recipe", "digits", "--epochs", "4", "--jit-compile"], None, False),
    "digits-mirrored": (
        ["--recipe", "digits", "--epochs", "4", "--strategy", "mirrored"],
        None,
        False,
    ),
}
# `digits` (TensorFlow, float32) is `large`: digits-jax takes the same path with
# one more thing. digits-mixed-precision (~70 s) is the only cell that loads and
# exports a mixed-precision model in processes of their own. sr-cityscapes'
# export (DeepLabv3 on ResNet50, even at 32x64) peaks at 9 GB of memory (13-14 GB
# before the ONNX export stopped tf2onnx's per-pass graph copies), which leaves
# room on a 24 GB machine for the other test worker.
# sr-cifar100 is the SGD paper recipe of make test (every paper recipe trains with
# SGDWithL2): 147 s on a 2-core machine without AVX-512, where sr-cityscapes, the same
# path with a segmentation head, took 336 s; sr-cityscapes is `large`
# (tests/test_export_coverage.py exports the segmentation nets in make test).
# digits-mixed-precision and sr-cifar100 moved to make test-large to keep make test
# within 30 minutes on 2 cores (2026-12-06): tests/test_export.py exports a
# mixed-precision model as its float32 clone, and the Training guide's first block
# trains with SGD, loads, exports and predicts, each in its own process.
IN_MAKE_TEST = ("digits-jax",)


def edge(runtime, model_path, image_path, cwd, *extra):
    return json.loads(
        run([sys.executable, EDGE[runtime], model_path, image_path, *extra], cwd)
        .stdout.strip()
        .splitlines()[-1]
    )


@pytest.mark.runs_first
@pytest.mark.parametrize(
    "cell",
    [pytest.param(name, marks=() if name in IN_MAKE_TEST else pytest.mark.large) for name in CELLS],
)
def test_train_load_export_deploy_each_in_its_own_process(cell, tmp_path):
    train_args, image_shape, segmentation = CELLS[cell]
    # 1. train
    backend = "jax" if cell.endswith("-jax") else "tensorflow"
    trained = run(
        [MEMBLOCKS, "train", *train_args, "--output-dir", "run"], tmp_path, backend=backend
    )
    assert not any(noise in trained.stderr for noise in CONSOLE_NOISE), trained.stderr[-3000:]
    model_path = trained.stdout.split("best model: ")[1].split()[0]
    results = json.loads((tmp_path / "run" / "seed_0" / "results.json").read_text())
    assert results["backend"] == backend
    assert f"export it:  memblocks export {model_path}" in trained.stdout
    assert (tmp_path / model_path).exists()

    # 2. load in a fresh interpreter; Keras' prediction on the edge image
    image = "digit.png" if image_shape is None else "image.npy"
    if image_shape is not None:
        np.save(
            tmp_path / image, np.random.default_rng(1).normal(size=image_shape).astype("float32")
        )
    loaded = json.loads(
        run([sys.executable, "-c", LOAD_SCRIPT, model_path, image, "keras.npy"], tmp_path)
        .stdout.strip()
        .splitlines()[-1]
    )
    if "sr-" in cell:
        assert loaded["optimizer"] == "SGDWithL2"  # the optimizer of the bug this test guards
    expected = np.load(tmp_path / "keras.npy")
    # ... and on the other backend (TensorFlow <-> JAX): the same numbers.
    other = "tensorflow" if backend == "jax" else "jax"
    run(
        [sys.executable, "-c", LOAD_SCRIPT, model_path, image, f"{other}.npy"],
        tmp_path,
        backend=other,
    )
    np.testing.assert_allclose(np.load(tmp_path / f"{other}.npy"), expected, rtol=1e-4, atol=1e-5)

    # 3. export (into an existing empty directory, as tempfile.mkdtemp() gives)
    (tmp_path / "exported").mkdir()
    export = [MEMBLOCKS, "export", model_path, "--output-dir", "exported"]
    if segmentation:
        np.save(
            tmp_path / "calibration.npy",
            np.random.default_rng(2).normal(size=(8, *image_shape)).astype("float32"),
        )
        export += ["--calibration", "calibration.npy"]
    else:
        export += ["--quantize", "int8"]
        if image_shape is not None:  # the paper recipes take normalised images, not digits
            np.save(
                tmp_path / "calibration.npy",
                np.random.default_rng(2).normal(size=(16, *image_shape)).astype("float32"),
            )
            export += ["--calibration", "calibration.npy"]
    exported = run(export, tmp_path)
    assert "| onnx |" in exported.stdout
    manifest = json.loads((tmp_path / "exported" / "manifest.json").read_text())
    assert manifest["source_precision"] == ("mixed" if "mixed" in cell else "float32")
    tflite = tmp_path / "exported" / manifest["files"]["tflite"]["path"]

    # 4. the edge scripts, which import neither TensorFlow nor this package
    if segmentation:
        assert "predictions_mean_iou" in results["test"]  # the monitored metric of the task
        assert manifest["dropped_outputs"] == ["aux"]
        for runtime, path in (("tflite", tflite), ("onnx", tmp_path / "exported" / "model.onnx")):
            result = edge(runtime, path, image, tmp_path, "--save-mask", f"{runtime}_mask.npy")
            assert result["segmentation"]["shape"] == list(image_shape[:2])
            mask = np.load(tmp_path / f"{runtime}_mask.npy")
            agreement = float(np.mean(mask == expected.argmax(-1)))
            assert agreement >= 0.999, (runtime, agreement)  # per-pixel argmax
        return
    keras_top1 = int(expected.argmax())
    assert (
        edge("onnx", tmp_path / "exported" / "model.onnx", image, tmp_path)["top1"]["class"]
        == keras_top1
    )
    int8 = edge("tflite", tflite, image, tmp_path)
    if image_shape is None:
        # A trained digits model on the digit it is surest of: int8 agrees.
        assert int8["top1"]["class"] == keras_top1
    else:
        # Untrained nets on noise have no margin int8 must keep; the edge
        # script must still compute what the package's own runner does.
        from keras_memblocks.export import run_tflite

        reference = run_tflite(tflite, np.load(tmp_path / image)[None])[0]
        assert int8["top1"]["class"] == int(reference.argmax())
        assert int8["top1"]["probability"] == pytest.approx(float(reference.max()), abs=1e-6)


TINY_DIGITS = [
    "train",
    "--recipe",
    "digits",
    "--epochs",
    "1",
    "--max-steps-per-epoch",
    "2",
    "--set",
    "image_size=16",
    "--model-args",
    json.dumps({"dataset": "cifar10", "width": 2, "blocks": {"block": "cc", "after": "conv"}}),
    "--output-dir",
    "run",
]


@pytest.mark.large  # 43 s; make test checks the finished-seed path in test_seeds_summary
def test_a_finished_run_is_kept_unless_overwrite(tmp_path):
    run([MEMBLOCKS, *TINY_DIGITS], tmp_path)
    best = tmp_path / "run" / "seed_0" / "best.keras"
    history = tmp_path / "run" / "seed_0" / "history.csv"
    stamp, rows = best.stat().st_mtime_ns, history.read_text()

    again = run([MEMBLOCKS, *TINY_DIGITS], tmp_path)
    assert "seed 0: already finished" in again.stdout
    assert "run/seed_0/results.json" in again.stdout and "--overwrite" in again.stdout
    assert best.stat().st_mtime_ns == stamp and history.read_text() == rows
    assert "best model: run/seed_0/best.keras" in again.stdout

    retrained = run([MEMBLOCKS, *TINY_DIGITS, "--overwrite"], tmp_path)
    assert "already finished" not in retrained.stdout
    assert best.stat().st_mtime_ns != stamp
    assert len(history.read_text().splitlines()) == 2  # header + this run's one epoch


def test_the_callers_dtype_policy_survives_a_run_that_fails_halfway(tmp_path, monkeypatch):
    from keras_memblocks.training import get_recipe
    from keras_memblocks.training import train
    from keras_memblocks.training.checkpoints import HistoryFile

    def disk_full(self, epoch, logs=None):
        raise OSError("No space left on device")

    monkeypatch.setattr(HistoryFile, "on_epoch_end", disk_full)
    config = get_recipe("digits").replace(
        epochs=2,
        max_steps_per_epoch=1,
        image_size=16,
        mixed_precision=True,
        model_args={"dataset": "cifar10", "width": 1},
    )
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        with pytest.raises(OSError, match="No space left"):
            train(config, tmp_path, verbose=0)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@keras.saving.register_keras_serializable(package="someone_else")
class Twice(keras.layers.Layer):
    def call(self, x):
        return 2 * x


def _user_mistakes(tmp_path):
    """Files for each mistake: {case: (command, what the one line must say)}."""
    from keras_memblocks.models import vgg_like

    good = tmp_path / "good.keras"
    vgg_like("mnist", width=1).save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.keras").write_bytes(data[: len(data) // 2])
    damaged = bytearray(data)
    middle = len(damaged) // 2
    damaged[middle : middle + 64] = bytes(b ^ 0xFF for b in damaged[middle : middle + 64])
    (tmp_path / "damaged.keras").write_bytes(bytes(damaged))
    (tmp_path / "notes.keras").write_text("my notes")
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, Twice()(inputs)).save(tmp_path / "foreign.keras")
    tabular = keras.Input((10,))
    keras.Model(tabular, keras.layers.Dense(2)(tabular)).save(tmp_path / "tabular.keras")
    diverged = vgg_like("mnist", width=1)  # what a run whose loss went to NaN saves
    head = diverged.get_layer("predictions")
    head.bias.assign(np.full(head.bias.shape, np.nan, "float32"))
    diverged.save(tmp_path / "diverged.keras")
    (tmp_path / "bad.yaml").write_text("epochs: [3\n")
    (tmp_path / "bad.json").write_text('{"epochs": 3,}')
    (tmp_path / "latin1.yaml").write_bytes("epochs: 3  # café\n".encode("latin-1"))
    (tmp_path / "text_lr.yaml").write_text('learning_rate: "0.1"\n')
    (tmp_path / "text.h5").write_text("not HDF5")
    with zipfile.ZipFile(tmp_path / "bad_config.keras", "w") as archive:
        archive.writestr("config.json", "{not json")
        archive.writestr("metadata.json", "{}")
    export = [MEMBLOCKS, "export"]
    return {
        "missing file": (export + ["nothing.keras"], "No model file 'nothing.keras'"),
        "not a Keras model": (export + ["notes.keras"], "notes.keras is not a Keras model file"),
        "truncated": (export + ["truncated.keras"], "truncated.keras is not a Keras model file"),
        "damaged": (export + ["damaged.keras"], "damaged.keras is a damaged .keras file"),
        "another package's class": (export + ["foreign.keras"], "holds 'someone_else>Twice'"),
        "input not an image": (export + ["tabular.keras"], "takes inputs of shape (None, 10)"),
        "diverged model": (export + ["diverged.keras"], "The model gives NaN or inf"),
        "bad yaml config": (
            [MEMBLOCKS, "train", "--config", "bad.yaml"],
            "Config file 'bad.yaml' is not valid YAML",
        ),
        "bad json config": (
            [MEMBLOCKS, "train", "--config", "bad.json"],
            "Config file 'bad.json' is not valid JSON",
        ),
        "non-UTF-8 config": (
            [MEMBLOCKS, "train", "--config", "latin1.yaml"],
            "Config file 'latin1.yaml' is not UTF-8 text",
        ),
        "learning rate as text": (
            [MEMBLOCKS, "train", "--config", "text_lr.yaml"],
            "`learning_rate` must be a number > 0. Received: '0.1' (str)",
        ),
        "HDF5 file that is not a model": (export + ["text.h5"], "text.h5 is not a Keras model"),
        "config.json that is not JSON": (
            export + ["bad_config.keras"],
            "bad_config.keras is a damaged .keras file (its config.json is not valid JSON",
        ),
        "missing calibration": (
            export + ["good.keras", "--calibration", "none.npy"],
            "No calibration file (give 'digits' or a .npy file of images) 'none.npy'",
        ),
    }


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mistakes")
    return folder, _user_mistakes(folder)


USER_MISTAKES = (
    "missing file",
    "not a Keras model",
    "truncated",
    "damaged",
    "another package's class",
    "input not an image",
    "diverged model",
    "bad yaml config",
    "bad json config",
    "non-UTF-8 config",
    "learning rate as text",
    "HDF5 file that is not a model",
    "config.json that is not JSON",
    "missing calibration",
)


def test_every_user_mistake_is_tried(mistakes):
    assert set(USER_MISTAKES) == set(mistakes[1])


# One item per mistake: the commands spread over the test workers.
@pytest.mark.parametrize("case", USER_MISTAKES)
def test_user_mistakes_get_one_line_and_exit_code_2(mistakes, case):
    folder, cases = mistakes
    command, message = cases[case]
    result = run(command, folder, expect=2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, (case, result.stderr[-3000:])
    assert lines[0].startswith("memblocks: error: ") and message in lines[0], (case, lines)


def test_edge_scripts_refuse_a_wrong_image_in_one_line(tmp_path):
    from keras_memblocks.export import export_model
    from keras_memblocks.models import vgg_like

    export_model(vgg_like("mnist", width=1), tmp_path / "exported", formats=("tflite", "onnx"))
    np.save(tmp_path / "wrong.npy", np.zeros((32, 32, 3), "float32"))
    for runtime, model in (("tflite", "model.tflite"), ("onnx", "model.onnx")):
        for image, message in (
            ("wrong.npy", "image of shape (32, 32, 3), the model takes (28, 28, 1)"),
            ("missing.npy", "No image file 'missing.npy'"),
        ):
            result = run(
                [sys.executable, EDGE[runtime], tmp_path / "exported" / model, image],
                tmp_path,
                expect=2,
            )
            assert "Traceback" not in result.stderr and message in result.stderr, result.stderr


def test_export_refuses_a_non_empty_directory_but_takes_an_empty_one(tmp_path):
    from keras_memblocks.export import export_model
    from keras_memblocks.models import vgg_like

    model = vgg_like("mnist", width=1)
    (tmp_path / "empty").mkdir()
    export_model(model, tmp_path / "empty", formats=("onnx",))
    assert (tmp_path / "empty" / "model.onnx").exists()
    with pytest.raises(ValueError, match="holds an earlier export; pass overwrite=True"):
        export_model(model, tmp_path / "empty", formats=("onnx",))
    manifest = export_model(model, tmp_path / "empty", formats=("tflite",), overwrite=True)
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == [
        ".memblocks-export",
        "manifest.json",
        "model.tflite",
    ]
    assert manifest["files"]["tflite"]["precision"] == "float32"
