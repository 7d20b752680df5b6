"""Squeeze-and-Excitation block (for the SR paper's SE combinations)."""

import keras
from keras import ops

from keras_memblocks.utils import argument_checks
from keras_memblocks.utils.initializers import add_dense_weights


@keras.saving.register_keras_serializable(package="keras_memblocks")
class SqueezeExcite2D(keras.layers.Layer):
    """Squeeze-and-Excitation: channels scaled by a gate from their means.

    `x * sigmoid(W2 relu(W1 mean_hw(x)))`, with a bottleneck of
    `max(1, C // reduction)` units. Written here rather than taken from
    keras-cv: keras-cv 0.9's `SqueezeAndExcite2D` has no
    `compute_output_shape` and returns wrong values under mixed precision
    (both found by this package's layer battery).

    Args:
        reduction: int >= 1, channel reduction of the bottleneck (16).
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: standard layer arguments.

    Reference:
        Hu, Shen, Sun. "Squeeze-and-Excitation Networks". CVPR 2018.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.layers import SqueezeExcite2D
        >>> tuple(SqueezeExcite2D()(np.ones((2, 8, 8, 32), "float32")).shape)
        (2, 8, 8, 32)
    """

    def __init__(self, reduction=16, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.reduction = argument_checks.check_positive_int("reduction", reduction)
        self.data_format = argument_checks.standardize_data_format(data_format)

    def build(self, input_shape):
        _, _, channels = argument_checks.feature_map_dims(
            self.__class__.__name__, input_shape, self.data_format
        )
        units = max(1, channels // self.reduction)
        self.reduce_kernel, self.reduce_bias = add_dense_weights(self, "reduce", channels, units)
        self.expand_kernel, self.expand_bias = add_dense_weights(self, "expand", units, channels)

    def call(self, inputs):
        spatial_axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        squeezed = ops.mean(inputs, axis=spatial_axes)  # (B, C)
        hidden = ops.relu(ops.matmul(squeezed, self.reduce_kernel) + self.reduce_bias)
        logits = ops.matmul(hidden, self.expand_kernel) + self.expand_bias
        gate = ops.sigmoid(ops.cast(logits, "float32"))
        gate = ops.cast(gate, inputs.dtype)
        if self.data_format == "channels_last":
            return inputs * gate[:, None, None, :]
        return inputs * gate[:, :, None, None]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "data_format": self.data_format})
        return config
