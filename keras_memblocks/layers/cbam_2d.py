"""Convolutional Block Attention Module (for the SR paper's CBAM combinations)."""

import keras
from keras import ops

from keras_memblocks.utils import argument_checks
from keras_memblocks.utils.initializers import add_dense_weights
from keras_memblocks.utils.initializers import fan_in_uniform


@keras.saving.register_keras_serializable(package="keras_memblocks")
class CBAM2D(keras.layers.Layer):
    """CBAM: channel attention, then spatial attention.

    Channel gate: `sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))` with a shared
    two-layer MLP (`max(1, C // reduction)` hidden units, ReLU). Spatial gate:
    `sigmoid(conv_k([mean_c(x'), max_c(x')]))` with a `kernel_size` conv from
    the 2 pooled maps to 1. Output `x' * spatial_gate` with
    `x' = x * channel_gate`.

    Args:
        reduction: int >= 1, channel reduction of the MLP (16).
        kernel_size: int >= 1, side of the spatial conv (7).
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: standard layer arguments.

    Reference:
        Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module".
        ECCV 2018.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.layers import CBAM2D
        >>> tuple(CBAM2D()(np.ones((2, 8, 8, 32), "float32")).shape)
        (2, 8, 8, 32)
    """

    def __init__(self, reduction=16, kernel_size=7, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.reduction = argument_checks.check_positive_int("reduction", reduction)
        self.kernel_size = argument_checks.check_positive_int("kernel_size", kernel_size)
        self.data_format = argument_checks.standardize_data_format(data_format)

    def build(self, input_shape):
        _, _, channels = argument_checks.feature_map_dims(
            self.__class__.__name__, input_shape, self.data_format
        )
        units = max(1, channels // self.reduction)
        self.mlp_hidden_kernel, self.mlp_hidden_bias = add_dense_weights(
            self, "mlp_hidden", channels, units
        )
        self.mlp_output_kernel, self.mlp_output_bias = add_dense_weights(
            self, "mlp_output", units, channels
        )
        fan_in = 2 * self.kernel_size**2
        self.spatial_kernel = self.add_weight(
            name="spatial_kernel",
            shape=(self.kernel_size, self.kernel_size, 2, 1),
            initializer=fan_in_uniform(fan_in),
        )
        self.spatial_bias = self.add_weight(name="spatial_bias", shape=(1,), initializer="zeros")

    def _mlp(self, pooled):
        hidden = ops.relu(ops.matmul(pooled, self.mlp_hidden_kernel) + self.mlp_hidden_bias)
        return ops.matmul(hidden, self.mlp_output_kernel) + self.mlp_output_bias

    def call(self, inputs):
        channels_last = self.data_format == "channels_last"
        spatial_axes = (1, 2) if channels_last else (2, 3)
        channel_axis = -1 if channels_last else 1
        logits = self._mlp(ops.mean(inputs, axis=spatial_axes)) + self._mlp(
            ops.max(inputs, axis=spatial_axes)
        )
        gate = ops.cast(ops.sigmoid(ops.cast(logits, "float32")), inputs.dtype)
        gate = gate[:, None, None, :] if channels_last else gate[:, :, None, None]
        refined = inputs * gate
        pooled = ops.stack(
            [ops.mean(refined, axis=channel_axis), ops.max(refined, axis=channel_axis)],
            axis=-1,
        )  # (B, H, W, 2) in either data format
        spatial = ops.conv(pooled, self.spatial_kernel, padding="same") + self.spatial_bias
        spatial = ops.cast(ops.sigmoid(ops.cast(spatial, "float32")), inputs.dtype)
        if not channels_last:
            spatial = ops.transpose(spatial, (0, 3, 1, 2))
        return refined * spatial

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "kernel_size": self.kernel_size,
                "data_format": self.data_format,
            }
        )
        return config
