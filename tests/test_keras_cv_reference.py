"""Our SE and DropBlock against keras-cv's, an independent implementation.

keras-cv is frozen (last release 2024-04) and its layers fail this
package's battery (no `compute_output_shape`; SE wrong under mixed
precision; DropBlock fails under XLA), so the package ships its own. It
stays useful as a reference: same weights give the same SE outputs, and
both DropBlocks drop the same fraction in blocks of the same shape.
keras-cv is a test dependency only.
"""

import keras_cv
import numpy as np
import pytest
from keras.ops import convert_to_numpy

from keras_memblocks.layers import DropBlock2D
from keras_memblocks.layers import SqueezeExcite2D


def test_squeeze_excite_matches_keras_cv_with_the_same_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 7, 9, 32)).astype("float32")
    ours = SqueezeExcite2D(reduction=4)
    ours.build(x.shape)
    reference = keras_cv.layers.SqueezeAndExcite2D(32, bottleneck_filters=8)
    reference(x)  # it has no build(): a first call makes its weights
    weights = [rng.normal(size=w.shape).astype("float32") * 0.3 for w in ours.weights]
    ours.set_weights(weights)
    reduce_kernel, reduce_bias, expand_kernel, expand_bias = weights
    reference.squeeze_conv.set_weights([reduce_kernel[None, None], reduce_bias])
    reference.excite_conv.set_weights([expand_kernel[None, None], expand_bias])
    np.testing.assert_allclose(
        convert_to_numpy(ours(x)), convert_to_numpy(reference(x)), rtol=1e-5, atol=1e-6
    )


def _dropped(layer, x, draws):
    """The dropped mask of `draws` training calls, (draws, B, H, W, C)."""
    return np.stack([convert_to_numpy(layer(x, training=True)) == 0.0 for _ in range(draws)])


def _is_union_of_blocks(mask, block):
    """Every dropped pixel lies in a fully dropped block x block square."""
    from scipy.ndimage import binary_opening

    structure = np.zeros((1, block, block, 1), bool)
    structure[0, :, :, 0] = True
    return np.array_equal(binary_opening(mask, structure=structure), mask)


@pytest.mark.parametrize("rate,block", [(0.1, 3), (0.2, 5)])
def test_drop_block_drops_like_keras_cv(rate, block):
    x = np.ones((8, 16, 16, 8), "float32")
    ours = _dropped(DropBlock2D(rate, block, seed=1), x, draws=20)
    reference = _dropped(keras_cv.layers.DropBlock2D(rate, block, seed=1), x, draws=20)
    # Same expected drop fraction (the same gamma): within sampling noise of
    # 20 * 8 * 8 maps, and close to the rate blocks can reach at the borders.
    assert abs(ours.mean() - reference.mean()) < 0.02
    assert 0.5 * rate < ours.mean() < 1.2 * rate
    # Both drop whole blocks, never lone pixels.
    assert _is_union_of_blocks(ours.reshape(-1, 16, 16, 8), block)
    assert _is_union_of_blocks(reference.reshape(-1, 16, 16, 8), block)


def test_drop_block_is_the_identity_at_inference_like_keras_cv():
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 4)).astype("float32")
    for layer in (DropBlock2D(0.3, 3), keras_cv.layers.DropBlock2D(0.3, 3)):
        np.testing.assert_array_equal(convert_to_numpy(layer(x, training=False)), x)
