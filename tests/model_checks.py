"""Checks every model builder must pass."""

import keras
import numpy as np


def outputs_as_arrays(outputs):
    if isinstance(outputs, dict):
        return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}
    return {"output": keras.ops.convert_to_numpy(outputs)}


def check_save_load_round_trip(model, x, tmp_path):
    """`.keras` save -> load (safe_mode) gives identical outputs."""
    expected = outputs_as_arrays(model(x, training=False))
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    got = outputs_as_arrays(loaded(x, training=False))
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(
            got[key], expected[key], rtol=0, atol=1e-6, equal_nan=False, err_msg=key
        )
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def check_jit_train_step(model, x, y):
    """One XLA-compiled training step runs and gives a finite loss."""
    losses = "sparse_categorical_crossentropy"
    if isinstance(model.output, dict):
        losses = {key: losses for key in model.output}
        y = {key: y for key in model.output}
    model.compile(optimizer="sgd", loss=losses, jit_compile=True)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]), logs


def layer_names(model):
    return [layer.name for layer in model.layers]
