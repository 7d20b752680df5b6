"""Runs both blocks on the JAX backend against the NumPy references.

Executed by tests/test_jax_backend.py in a subprocess with KERAS_BACKEND=jax
(the backend is fixed once Keras is imported).
"""

import keras
import numpy as np

assert keras.backend.backend() == "jax", keras.backend.backend()

from keras_memblocks.layers import ContextualConvBlock2D  # noqa: E402
from keras_memblocks.layers import SqueezeAndRemember2D  # noqa: E402
from keras_memblocks.layers import VARIANT_NAMES  # noqa: E402
from tests import numpy_reference  # noqa: E402


def randomized(layer, shape, seed=0):
    layer.build((None, *shape))
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.5)
    return layer, {w.name: np.asarray(w) for w in layer.weights}


x = np.random.default_rng(0).normal(size=(3, 13, 12, 4)).astype("float32")
sr, weights = randomized(SqueezeAndRemember2D(3, 5, hidden_activation="relu"), x.shape[1:])
expected, _ = numpy_reference.squeeze_and_remember(x, weights, "relu")
np.testing.assert_allclose(np.asarray(sr(x)), expected, rtol=1e-4, atol=1e-4)

for variant in VARIANT_NAMES:
    for emp in (("bilinear",) if "scalar" in variant else ("bilinear", "gaussian", "sine")):
        layer, weights = randomized(
            ContextualConvBlock2D(variant, emp=emp, ch_units=(5, 3)), x.shape[1:]
        )
        expected, _, _ = numpy_reference.contextual_conv(x, weights, variant, emp)
        np.testing.assert_allclose(
            np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-4, err_msg=f"{variant}/{emp}"
        )

# A jitted training step through both blocks (JAX's fit always compiles).
inputs = keras.Input(x.shape[1:])
hidden = SqueezeAndRemember2D(2, 4)(inputs)
outputs = ContextualConvBlock2D("full", ch_units=(5, 3))(hidden)
model = keras.Model(inputs, outputs)
model.compile(optimizer="sgd", loss="mse")
history = model.fit(x, x * 0.5, epochs=2, verbose=0)
assert np.all(np.isfinite(history.history["loss"]))
print("jax backend OK")
