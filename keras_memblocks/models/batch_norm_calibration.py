"""Batch-norm statistics of an untrained network, set from real images."""

import keras
import numpy as np


def calibrate_batch_norm(model, images, batch_size=32):
    """Sets every `BatchNormalization` layer's moving statistics from `images`.

    Layer by layer, in graph order: each layer's moving mean and variance
    become those of its input on `images`, with the layers before it
    already calibrated. An untrained network built with `weights=None`
    otherwise keeps mean 0 / variance 1, and in a deep net such as
    `keras.applications.MobileNetV2` its activations then vanish (outputs
    independent of the input, ~1e-11 features): export parity and
    latency checks on it would compare constants. Trained weights need none
    of this.

    Args:
        model: a functional `keras.Model`.
        images: a batch of real inputs (a few dozen suffice).
        batch_size: inference batch size.

    Returns:
        The names of the calibrated layers.

    Examples:
        >>> import keras, numpy as np
        >>> from keras_memblocks.models import calibrate_batch_norm
        >>> model = keras.Sequential([
        ...     keras.Input((8, 8, 3)),
        ...     keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(), keras.layers.ReLU(),
        ...     keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization()])
        >>> images = np.random.default_rng(0).random((16, 8, 8, 3), dtype=np.float32) + 5
        >>> len(calibrate_batch_norm(model, images))
        2
        >>> outputs = model.predict(images, verbose=0)  # each channel now normalized
        >>> bool(np.allclose(outputs.mean(axis=(0, 1, 2)), 0, atol=1e-4))
        True
        >>> bool(np.allclose(outputs.std(axis=(0, 1, 2)), 1, atol=1e-2))
        True
    """
    images = np.asarray(images, dtype="float32")
    calibrated = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        inputs = keras.Model(model.inputs, layer.input).predict(
            images, batch_size=batch_size, verbose=0
        )
        axes = tuple(i for i in range(inputs.ndim) if i != layer.axis % inputs.ndim)
        layer.moving_mean.assign(inputs.mean(axis=axes))
        layer.moving_variance.assign(inputs.var(axis=axes))
        calibrated.append(layer.name)
    return calibrated
