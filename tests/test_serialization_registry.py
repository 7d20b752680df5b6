"""Everything the package can put into a `.keras` file loads in a new process
that imports only `keras` and `keras_memblocks`.

The registry is read, not listed by hand: a class registered anywhere in the
package is found here, and a kind of object this file has no holder for
fails the test until one is added.
"""

import importlib
import importlib.util
import json
import pkgutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_memblocks
from keras_memblocks.utils.extras import MissingExtraError
from tests import layer_battery

pytestmark = pytest.mark.every_backend

PREFIX = "keras_memblocks>"
INPUT_SHAPE = (8, 8, 4)


def registered_in_this_process():
    return {
        name: obj
        for name, obj in keras.saving.get_custom_objects().items()
        if name.startswith(PREFIX)
    }


def registered_by_every_module():
    """The package's registry once every one of its modules is imported.

    In an install without an extra, the modules built on it cannot be
    imported, and register nothing there.
    """
    for info in pkgutil.walk_packages(
        keras_memblocks.__path__, "keras_memblocks.", onerror=lambda name: None
    ):
        try:
            importlib.import_module(info.name)
        except MissingExtraError as error:  # raised only for what is truly not installed
            assert error.missing, info.name
    return registered_in_this_process()


def test_import_keras_memblocks_registers_everything_the_package_registers():
    script = (
        "import json, keras, keras_memblocks\n"
        f"print(json.dumps(sorted(k for k in keras.saving.get_custom_objects() "
        f"if k.startswith({PREFIX!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    on_import = json.loads(result.stdout.strip().splitlines()[-1])
    everything = sorted(registered_by_every_module())
    assert "keras_memblocks>SGDWithL2" in everything
    assert on_import == everything, (
        f"registered only when a submodule is imported: {sorted(set(everything) - set(on_import))}"
    )


def _layer_holder(layer_class, path, inputs_path):
    """A model holding the layer, weights moved off their initial values."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(INPUT_SHAPE)
    model = keras.Model(inputs, layer_class()(inputs))
    layer_battery.randomize_weights(model, scale=0.1)
    x = np.load(inputs_path)
    expected = keras.ops.convert_to_numpy(model(x))
    model.save(path)
    return {"kind": "layer", "expected": expected.tolist()}


def _optimizer_holder(optimizer_class, path, inputs_path):
    """A compiled, trained model whose optimizer (with its state and a
    learning-rate schedule, as the recipes use) is the class."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.1, 0.01])
    model.compile(
        optimizer=optimizer_class(learning_rate=schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    x = np.load(inputs_path)
    model.fit(x, np.arange(len(x)) % 3, epochs=2, batch_size=2, verbose=0)
    model.save(path)
    return {
        "kind": "optimizer",
        "config": keras.saving.serialize_keras_object(model.optimizer),
        "variables": [keras.ops.convert_to_numpy(v).tolist() for v in model.optimizer.variables],
    }


def _hub_backbone_holder(backbone_class, path, inputs_path):
    """A keras-hub backbone with a block inserted, as `insert_blocks`
    returns it (the registered class is what it becomes)."""
    import keras_hub

    from keras_memblocks.models import insert_blocks

    keras.utils.set_random_seed(0)
    inputs = keras.Input(INPUT_SHAPE)
    features = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    original = keras_hub.models.Backbone(inputs, features, name="backbone")
    model = insert_blocks(original, "sr", after=["conv"], num_memory_blocks=2)
    assert type(model) is backbone_class
    layer_battery.randomize_weights(model, scale=0.1)
    x = np.load(inputs_path)
    expected = keras.ops.convert_to_numpy(model(x))
    model.save(path)
    return {"kind": "layer", "expected": expected.tolist()}


# The first base class that fits is used: models before layers.
HOLDERS = {
    keras.Model: _hub_backbone_holder,
    keras.layers.Layer: _layer_holder,
    keras.optimizers.Optimizer: _optimizer_holder,
}

LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    import keras_memblocks  # all it takes

    x = np.load(sys.argv[2])
    report = {}
    for name, path in json.loads(sys.argv[1]).items():
        model = keras.saving.load_model(path)  # safe_mode=True
        report[name] = {
            "output": keras.ops.convert_to_numpy(model(x)).tolist(),
            "optimizer": keras.saving.serialize_keras_object(model.optimizer)
                         if getattr(model, "optimizer", None) is not None else None,
            "optimizer_variables": [keras.ops.convert_to_numpy(v).tolist()
                                    for v in model.optimizer.variables]
                                   if getattr(model, "optimizer", None) is not None else [],
        }
    print(json.dumps(report))
""")


def test_every_registered_object_loads_in_a_fresh_process(tmp_path):
    inputs_path = tmp_path / "inputs.npy"
    np.save(inputs_path, np.random.default_rng(0).normal(size=(4, *INPUT_SHAPE)).astype("float32"))
    paths, saved = {}, {}
    for name, obj in sorted(registered_by_every_module().items()):
        holder = next(
            (h for base, h in HOLDERS.items() if isinstance(obj, type) and issubclass(obj, base)),
            None,
        )
        if holder is None:
            pytest.fail(
                f"{name} is registered, but this test has no holder for a {obj!r}: "
                "add one to HOLDERS so that it is checked."
            )
        paths[name] = str(tmp_path / f"{name.split('>')[1]}.keras")
        saved[name] = holder(obj, paths[name], inputs_path)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, json.dumps(paths), str(inputs_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(loaded) == sorted(saved)
    for name, expected in saved.items():
        if expected["kind"] == "layer":
            np.testing.assert_allclose(
                loaded[name]["output"], expected["expected"], atol=1e-6, err_msg=name
            )
        else:
            assert loaded[name]["optimizer"] == expected["config"], name
            for got, want in zip(
                loaded[name]["optimizer_variables"], expected["variables"], strict=True
            ):
                np.testing.assert_allclose(got, want, err_msg=name)
