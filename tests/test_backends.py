"""The package off TensorFlow: JAX and PyTorch, with or without TensorFlow installed.

`make test` runs this file (with the layer, model and analysis files) twice:
on TensorFlow, and on JAX in a virtual environment where TensorFlow is not
installed; `make test-torch` runs it on PyTorch. The layer battery itself is
in the layers' own test files.
"""

import importlib
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_memblocks
from keras_memblocks import models
from keras_memblocks.models import calibrate_batch_norm
from keras_memblocks.models import insert_blocks
from keras_memblocks.utils import extras

pytestmark = pytest.mark.every_backend

BACKEND = keras.backend.backend()
# An off-TensorFlow backend for the subprocesses: this one, or JAX.
OTHER_BACKEND = "jax" if BACKEND == "tensorflow" else BACKEND


def run_python(script, env=None, timeout=600):
    environment = {
        **os.environ,
        "KERAS_BACKEND": OTHER_BACKEND,
        "JAX_PLATFORMS": "cpu",
        **(env or {}),
    }
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_the_core_imports_none_of_the_extras_parts():
    # In the core install (make test's .venv-jax) this import succeeding is the proof that
    # Keras and NumPy suffice; everywhere, the core must not load a part built on an extra.
    # (Which third-party modules load says little where the extras are installed: Keras
    # imports scikit-learn and Matplotlib itself, and TensorFlow when it serializes.)
    loaded = json.loads(
        run_python("""
        import json, sys
        import keras_memblocks
        from keras_memblocks import layers, models, optimizers
        # (models.hub_models loads where keras-hub is: it registers BackboneWithBlocks.)
        parts = ("data", "training", "export", "analysis", "cli", "demo")
        print(json.dumps(sorted(p for p in parts if f"keras_memblocks.{p}" in sys.modules)))
    """)
    )
    assert loaded == []


@pytest.mark.core_only
def test_in_the_core_install_only_keras_numpy_and_the_backend_are_there():
    assert all(extras.missing_packages(extra) for extra in extras.EXTRAS)
    assert run_python("import keras_memblocks; print(keras_memblocks.__version__)") == (
        keras_memblocks.__version__
    )


@pytest.mark.core_only
def test_a_backend_that_is_not_installed_is_named_in_one_line():
    # The core install has JAX only: asking Keras for TensorFlow must say so plainly.
    result = subprocess.run(
        [sys.executable, "-c", "import keras_memblocks"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: Keras' backend is 'tensorflow'"), result.stderr[-2000:]
    assert 'pip install "tensorflow"' in last and "KERAS_BACKEND=jax" in last


def test_a_missing_extra_is_one_line_naming_its_install(monkeypatch):
    absent = {"tensorflow": "tensorflow_is_not_here", "tf2onnx": "tf2onnx_is_not_here"}
    monkeypatch.setitem(extras.EXTRAS, "export", absent)
    with pytest.raises(extras.MissingExtraError) as error:
        extras.require("export", "keras_memblocks.export")
    assert str(error.value) == (
        "keras_memblocks.export needs the [export] extra (tensorflow, tf2onnx not installed): "
        'pip install "keras-memblocks[export]"'
    )
    assert error.value.extra == "export" and error.value.missing == ("tensorflow", "tf2onnx")
    # Several extras at once: only the missing ones are named.
    monkeypatch.setitem(extras.EXTRAS, "hub", {})
    with pytest.raises(extras.MissingExtraError, match=r'pip install "keras-memblocks\[export\]"$'):
        extras.require(("hub", "export"), "memblocks export")
    with pytest.raises(ValueError, match="Unknown extra 'exports'"):
        extras.require("exports", "x")


# Each extra's modules, and each command, where the extra is not installed.
EXTRA_MODULES = {
    "keras_memblocks.data": "data",
    "keras_memblocks.training": "train",
    "keras_memblocks.export": "export",
    "keras_memblocks.analysis": "analysis",
    "keras_memblocks.models.hub_models": "hub",
}
COMMANDS = {
    ("train", "--recipe", "digits"): "[train]",
    ("reproduce", "sr-table1", "--quick"): "[train]",
    ("export", "model.keras"): "[export,data]",  # the digits calibrate it by default
    ("export", "model.keras", "--calibration", "images.npy"): "[export]",
    ("demo",): "[train,export]",
}


@pytest.mark.core_only
@pytest.mark.parametrize("module", list(EXTRA_MODULES))
def test_in_the_core_install_each_extra_module_says_what_to_install(module):
    extra = EXTRA_MODULES[module]
    with pytest.raises(extras.MissingExtraError) as error:
        importlib.import_module(module)
    message = str(error.value)
    assert message.startswith(f"{module} needs the [{extra}] extra (")
    assert message.endswith(f'pip install "keras-memblocks[{extra}]"') and "\n" not in message


@pytest.mark.core_only
@pytest.mark.parametrize("command", list(COMMANDS), ids=" ".join)
def test_in_the_core_install_each_command_says_what_to_install(command):
    memblocks = os.path.join(os.path.dirname(sys.executable), "memblocks")
    result = subprocess.run([memblocks, *command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    wanted = COMMANDS[command]
    assert result.stderr.startswith(f"memblocks: error: memblocks {command[0]} needs the {wanted}")
    assert result.stderr.endswith(f'pip install "keras-memblocks{wanted}"\n')


HELP = """
import sys
sys.argv[0] = "memblocks"  # as the console script runs it
from keras_memblocks import cli
for words in ([], ["train"], ["reproduce"], ["export"], ["demo"]):
    try:
        cli.main([*words, "--help"])
    except SystemExit as exit:
        assert exit.code == 0, (words, exit.code)
print("keras" in sys.modules, "tensorflow" in sys.modules)
"""


def test_memblocks_help_imports_no_keras_in_any_install():
    # Keras imports TensorFlow where it is installed (seconds): --help must not wait for it.
    assert run_python(HELP) == "False False"


def digits(size, count, seed=0):
    from keras_memblocks.data import load_digits  # the [data] extra

    (x, y), (x_test, y_test) = load_digits(size, channels=3, seed=seed)
    return (x[:count], y[:count]), (x_test[:count], y_test[:count])


# The papers' classifiers, and a keras.applications model with a block
# inserted. Each is trained with model.fit on real digits.
PAPER_MODELS = {
    "vgg_like_cc": lambda: models.vgg_like(
        "cifar10", width=16, num_classes=10, blocks={"block": "cc", "after": "conv"}
    ),
    "cifar_resnet18_sr": lambda: models.cifar_resnet(
        18,
        num_classes=10,
        width=8,
        blocks={"block": "sr", "after": 3, "num_memory_blocks": 4, "hidden_units": 8},
    ),
}


# TensorFlow trains them in the trainer's and the workflow tests.
@pytest.mark.runs_first
@pytest.mark.backends("jax", "torch")
@pytest.mark.needs_extras("data")
@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_the_papers_models_learn_the_digits_with_fit(name):
    keras.utils.set_random_seed(0)
    (x, y), (x_test, y_test) = digits(32, 512)
    model = PAPER_MODELS[name]()
    model.compile(
        optimizer=keras.optimizers.AdamW(2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    # Four epochs are too few for BatchNorm's moving averages; set them.
    calibrate_batch_norm(model, x)
    accuracy = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    assert accuracy > 0.5, accuracy  # chance is 0.1


# (ImageNet ResNet50 with SR: its round trip and train step in test_resnet50.py.)
@pytest.mark.runs_first
@pytest.mark.backends("jax", "torch")
@pytest.mark.needs_extras("data")
def test_mobilenet_v2_with_cc_inserted_takes_fit_steps():
    keras.utils.set_random_seed(0)
    (x, y), _ = digits(32, 8)
    base = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    model = insert_blocks(base, "cc", ["block_3_project_BN", "block_13_expand_relu"])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    moved = [
        not np.array_equal(keras.ops.convert_to_numpy(w), b)
        for w, b in zip(model.trainable_weights, before)
    ]
    assert sum(moved) > 0.9 * len(moved)


DATA_PARALLEL = """
import json
import jax
import keras
import numpy as np
from keras_memblocks import models
from keras_memblocks.data import load_digits

assert len(jax.devices()) == 2, jax.devices()
(x, y), _ = load_digits(32, channels=3)
x, y = x[:64], y[:64]


def trained(distribution):
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(0)
    model = {builder}
    for layer in model.layers:  # see the test's docstring
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    devices = {{len(w.value.sharding.device_set) for w in model.weights
               if w.value.sharding.is_fully_replicated}}
    return weights, sorted(devices)


parallel, devices = trained(keras.distribution.DataParallel(devices=jax.devices()))
single, _ = trained(None)
print(json.dumps({{
    "replicated_on_devices": devices,
    "max_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(parallel, single)),
}}))
"""


@pytest.mark.backends("jax")
@pytest.mark.needs_extras("data")
@pytest.mark.parametrize(
    "builder",
    [
        # 35 s and 30 s: `make test-large`. In make test, tests/test_data_parallel.py
        # checks the CC net's data-parallel runs (the command, two processes) against
        # one device.
        pytest.param(
            'models.vgg_like("cifar10", width=8, num_classes=10, '
            'blocks={"block": "cc", "after": "conv"})',
            marks=pytest.mark.large,
        ),
        pytest.param(
            'models.cifar_resnet(18, num_classes=10, width=8, blocks={"block": "sr", "after": 3, '
            '"num_memory_blocks": 3})',
            marks=pytest.mark.large,
        ),
    ],
)
def test_data_parallel_on_two_devices_trains_as_one_device_does(builder):
    """Keras' DataParallel, the JAX counterpart of `--strategy mirrored`:
    every weight replicated on both devices, and the batch split over them
    gives the one-device weights.

    BatchNormalization is frozen for the comparison: while it trains, its
    batch statistics make the two runs differ (by 0.05 in the stem's kernel
    after 4 steps of ResNet-18, in a one-off check with this script and
    BatchNormalization left trainable).
    """
    result = json.loads(
        run_python(
            DATA_PARALLEL.format(builder=builder),
            env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "KERAS_BACKEND": "jax"},
        )
    )
    assert result["replicated_on_devices"] == [2], result
    assert result["max_diff"] < 1e-5, result


@pytest.mark.backends("jax")
def test_block_overhead_counts_the_xla_cpu_library_fusions():
    # benchmarks/block_overhead.py records, on JAX's CPU, how many pieces XLA
    # hands to its kernel library per model (the README's explanation of the
    # JAX inference ratios); the count must come from the compiled step.
    from benchmarks.block_overhead import cifar100_vgg_like
    from benchmarks.block_overhead import xla_cpu_library_fusions

    x = np.zeros((2, 32, 32, 3), "float32")
    for model in (cifar100_vgg_like(width=4), cifar100_vgg_like(width=4, block_variant="reduced")):
        count = xla_cpu_library_fusions(model, x)
        assert isinstance(count, int) and count >= 1
