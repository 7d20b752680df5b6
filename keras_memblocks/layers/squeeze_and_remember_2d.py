"""The Squeeze-and-Remember (SR) block."""

import keras
from keras import ops

from keras_memblocks.utils import argument_checks
from keras_memblocks.utils.initializers import fan_in_uniform


@keras.saving.register_keras_serializable(package="keras_memblocks")
class SqueezeAndRemember2D(keras.layers.Layer):
    """Squeeze-and-Remember block: adds a learned, input-weighted memory.

    The block squeezes the feature map `X` (B, H, W, C) to one channel with a
    1x1 convolution, flattens it to `(B, H*W)` and feeds a two-layer fully
    connected net (`H*W -> U -> P`) whose softmax weights P learned memory
    tensors `M_i` (H, W, C). The output is `X + sum_i softmax_i * M_i`: the
    same shape as the input. Memories start at zero, so the block is the
    identity at initialisation.

    Added parameters: `C + H*W*U + U*P + P*C*H*W` (the paper's eq. 1), plus
    `U + P` biases when `use_bias`. The squeeze convolution has no bias: a
    constant shift of the squeezed map is absorbed exactly by the bias of
    the first fully connected layer.

    Args:
        num_memory_blocks: int >= 1, `P`, the number of memory tensors.
        hidden_units: int >= 1, `U`, the width of the hidden FC layer.
        hidden_activation: activation of the hidden FC layer (a Keras
            activation name). `None` (default) keeps it linear, as in the
            paper.
        use_bias: whether the two FC layers have biases.
        return_memory_weights: if `True`, the layer returns
            `(output, memory_weights)` with `memory_weights` of shape (B, P):
            the softmax weights given to each memory (for analysis).
        data_format: `"channels_last"` (B, H, W, C) or `"channels_first"`
            (B, C, H, W). Defaults to `keras.config.image_data_format()`.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: a 4-D feature map whose height, width and channels are known
            when the layer is built; later calls must have the same size.

    Input shape:
        `(batch, H, W, C)` for `"channels_last"`, `(batch, C, H, W)` for
        `"channels_first"`.

    Output shape:
        Same as the input; with `return_memory_weights=True`, also
        `(batch, num_memory_blocks)`.

    Reference:
        Cakaj, Mehnert, Yang. "Squeeze-and-Remember Block". ICMLA 2024.
        arXiv:2410.00823.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.layers import SqueezeAndRemember2D
        >>> block = SqueezeAndRemember2D(num_memory_blocks=4, hidden_units=8)
        >>> x = np.random.rand(2, 14, 14, 32).astype("float32")
        >>> y = block(x)
        >>> tuple(y.shape)
        (2, 14, 14, 32)
        >>> bool(np.allclose(y, x))  # zero-initialised memories: identity
        True
        >>> block.count_params()  # 32 + 196*8 + 8*4 + 4*32*196 + (8 + 4)
        26732
    """

    def __init__(
        self,
        num_memory_blocks=2,
        hidden_units=8,
        hidden_activation=None,
        use_bias=True,
        return_memory_weights=False,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_memory_blocks = argument_checks.check_positive_int(
            "num_memory_blocks", num_memory_blocks
        )
        self.hidden_units = argument_checks.check_positive_int("hidden_units", hidden_units)
        self._hidden_activation_fn, self.hidden_activation = argument_checks.resolve_activation(
            hidden_activation
        )
        self.use_bias = bool(use_bias)
        self.return_memory_weights = bool(return_memory_weights)
        self.data_format = argument_checks.standardize_data_format(data_format)

    def build(self, input_shape):
        height, width, channels = argument_checks.static_feature_map_dims(
            self.__class__.__name__, input_shape, self.data_format
        )
        self._dims = (height, width, channels)
        num_pixels = height * width
        units, memories = self.hidden_units, self.num_memory_blocks

        self.squeeze_kernel = self.add_weight(
            name="squeeze_kernel",
            shape=(channels,),
            initializer=fan_in_uniform(channels),
        )
        # The small FC net runs in float32 under mixed precision: the softmax
        # weights are what the analyses read, and they are cheap to compute.
        fc_weight = dict(autocast=False, dtype="float32")
        self.hidden_kernel = self.add_weight(
            name="hidden_kernel",
            shape=(num_pixels, units),
            initializer=fan_in_uniform(num_pixels),
            **fc_weight,
        )
        self.logits_kernel = self.add_weight(
            name="logits_kernel",
            shape=(units, memories),
            initializer=fan_in_uniform(units),
            **fc_weight,
        )
        if self.use_bias:
            self.hidden_bias = self.add_weight(
                name="hidden_bias",
                shape=(units,),
                initializer=fan_in_uniform(num_pixels),
                **fc_weight,
            )
            self.logits_bias = self.add_weight(
                name="logits_bias",
                shape=(memories,),
                initializer=fan_in_uniform(units),
                **fc_weight,
            )
        if self.data_format == "channels_last":
            memory_shape = (memories, height, width, channels)
        else:
            memory_shape = (memories, channels, height, width)
        self.memory = self.add_weight(name="memory", shape=memory_shape, initializer="zeros")

    def _squeeze(self, inputs):
        height, width, channels = self._dims
        kernel = ops.cast(self.squeeze_kernel, inputs.dtype)
        if self.data_format == "channels_last":
            # The 1x1 convolution itself: a CONV_2D in TFLite. A (B*H*W, C)
            # @ (C, 1) matmul wrote a RESHAPE whose -1 is B*H*W, stored as 1
            # in a dynamic-batch file, which TFLite Micro (it never resizes)
            # refused to prepare; a (B, H*W, C) @ (C, 1) one traced to a
            # tensordot of dynamic-shape ops XNNPACK does not take.
            squeezed = ops.conv(
                inputs, ops.reshape(kernel, (1, 1, channels, 1)), data_format="channels_last"
            )
        else:
            flat = ops.reshape(inputs, (-1, channels, height * width))
            squeezed = ops.matmul(ops.reshape(kernel, (1, 1, channels)), flat)
        return ops.reshape(squeezed, (-1, height * width))  # (B, H*W)

    def _memory_weights(self, inputs):
        """Softmax weights of the memories, float32, shape (B, P)."""
        argument_checks.check_same_dims(
            self.__class__.__name__, self._dims, inputs.shape, self.data_format
        )
        squeezed = ops.cast(self._squeeze(inputs), "float32")  # (B, H*W)
        hidden = ops.matmul(squeezed, self.hidden_kernel)  # (B, U)
        if self.use_bias:
            hidden = hidden + self.hidden_bias
        hidden = self._hidden_activation_fn(hidden)
        logits = ops.matmul(hidden, self.logits_kernel)  # (B, P)
        if self.use_bias:
            logits = logits + self.logits_bias
        if self.num_memory_blocks == 1:
            # softmax over one logit is exactly 1 (Keras warns on it).
            return ops.ones_like(logits)
        return ops.softmax(logits, axis=-1)

    def compute_memory_weights(self, inputs):
        """Returns the softmax weight of each memory, shape (B, P), float32.

        The same numbers `return_memory_weights=True` returns, for analysis
        of a layer that was built without that option.
        """
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        if not self.built:
            self.build(inputs.shape)
        return self._memory_weights(inputs)

    def call(self, inputs):
        weights = self._memory_weights(inputs)  # (B, P) float32
        memory = ops.cast(self.memory, inputs.dtype)
        flat_memory = ops.reshape(memory, (self.num_memory_blocks, -1))
        recalled = ops.matmul(ops.cast(weights, inputs.dtype), flat_memory)
        recalled = ops.reshape(recalled, (-1,) + tuple(self.memory.shape[1:]))
        outputs = inputs + recalled
        if self.return_memory_weights:
            return outputs, ops.cast(weights, self.compute_dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.return_memory_weights:
            return input_shape, (input_shape[0], self.num_memory_blocks)
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_memory_blocks": self.num_memory_blocks,
                "hidden_units": self.hidden_units,
                "hidden_activation": self.hidden_activation,
                "use_bias": self.use_bias,
                "return_memory_weights": self.return_memory_weights,
                "data_format": self.data_format,
            }
        )
        return config


SRBlock = SqueezeAndRemember2D
"""Short name of `SqueezeAndRemember2D` (the same class)."""
