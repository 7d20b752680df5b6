"""SE, CBAM and DropBlock: the layers the SR paper combines with SR."""

import numpy as np
import pytest
from keras.ops import convert_to_numpy

from keras_memblocks.layers import CBAM2D
from keras_memblocks.layers import DropBlock2D
from keras_memblocks.layers import SqueezeExcite2D
from keras_memblocks.layers import get_block
from tests import layer_battery
from tests.numpy_reference import ACTIVATIONS

pytestmark = pytest.mark.every_backend


def sigmoid(v):
    return ACTIVATIONS["sigmoid"](v)


def weights(layer):
    return {w.name: convert_to_numpy(w).astype("float64") for w in layer.weights}


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (SqueezeExcite2D, dict(reduction=4)),
        (CBAM2D, dict(reduction=4, kernel_size=3)),
        (CBAM2D, dict(reduction=2, data_format="channels_first")),
        (DropBlock2D, dict(rate=0.2, block_size=3, seed=1)),
    ],
    ids=["se", "cbam", "cbam_channels_first", "dropblock"],
)
def test_layer_battery(cls, kwargs, tmp_path):
    shape = (8, 6, 6) if kwargs.get("data_format") == "channels_first" else (6, 6, 8)
    layer_battery.run_layer_battery(cls, kwargs, shape, tmp_path)


def test_registry_names():
    assert isinstance(get_block("se"), SqueezeExcite2D)
    assert isinstance(get_block("cbam", kernel_size=3), CBAM2D)
    assert isinstance(get_block("dropblock", rate=0.2), DropBlock2D)


def test_squeeze_excite_matches_numpy():
    x = layer_battery.random_inputs((5, 4, 8))
    layer = SqueezeExcite2D(reduction=2)
    layer.build(x.shape)
    layer_battery.randomize_weights(layer)
    w = weights(layer)
    pooled = x.mean(axis=(1, 2))
    hidden = np.maximum(pooled @ w["reduce_kernel"] + w["reduce_bias"], 0)
    gate = sigmoid(hidden @ w["expand_kernel"] + w["expand_bias"])
    np.testing.assert_allclose(
        convert_to_numpy(layer(x)), x * gate[:, None, None, :], rtol=1e-5, atol=1e-6
    )


def test_cbam_matches_numpy():
    x = layer_battery.random_inputs((5, 4, 6))
    layer = CBAM2D(reduction=2, kernel_size=3)
    layer.build(x.shape)
    layer_battery.randomize_weights(layer)
    w = weights(layer)

    def mlp(v):
        hidden = np.maximum(v @ w["mlp_hidden_kernel"] + w["mlp_hidden_bias"], 0)
        return hidden @ w["mlp_output_kernel"] + w["mlp_output_bias"]

    gate = sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))
    refined = x * gate[:, None, None, :]
    pooled = np.stack([refined.mean(-1), refined.max(-1)], -1)  # (B, H, W, 2)
    padded = np.pad(pooled, ((0, 0), (1, 1), (1, 1), (0, 0)))
    kernel = w["spatial_kernel"][..., 0]  # (3, 3, 2)
    spatial = np.zeros(pooled.shape[:3])
    for i in range(pooled.shape[1]):
        for j in range(pooled.shape[2]):
            spatial[:, i, j] = (padded[:, i : i + 3, j : j + 3, :] * kernel).sum(axis=(1, 2, 3))
    expected = refined * sigmoid(spatial + w["spatial_bias"][0])[..., None]
    np.testing.assert_allclose(convert_to_numpy(layer(x)), expected, rtol=1e-4, atol=1e-5)


def test_dropblock_drops_whole_blocks_at_the_rate():
    x = np.ones((8, 16, 16, 4), "float32")
    layer = DropBlock2D(rate=0.2, block_size=4, seed=3)
    out = convert_to_numpy(layer(x, training=True))
    dropped = out == 0
    assert 0.12 < dropped.mean() < 0.28
    # Kept values are rescaled so the expected activation is unchanged.
    kept_value = out[~dropped][0]
    np.testing.assert_allclose(out[~dropped], kept_value)
    np.testing.assert_allclose(kept_value, dropped.size / (~dropped).sum(), rtol=1e-5)
    # Every dropped pixel lies in a fully dropped 4x4 square.
    for b, i, j, c in zip(*np.nonzero(dropped)):
        assert any(
            dropped[b, max(r, 0) : r + 4, max(s, 0) : s + 4, c].all()
            and r >= 0
            and s >= 0
            and r + 4 <= 16
            and s + 4 <= 16
            for r in range(i - 3, i + 1)
            for s in range(j - 3, j + 1)
        )


def test_dropblock_is_identity_at_inference_and_rejects_bad_rate():
    x = layer_battery.random_inputs((6, 6, 3))
    np.testing.assert_array_equal(convert_to_numpy(DropBlock2D(0.5, 3)(x)), x)
    with pytest.raises(ValueError, match=r"rate.*\[0, 1\).*1.5"):
        DropBlock2D(rate=1.5)
