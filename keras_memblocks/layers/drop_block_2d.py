"""DropBlock (for the SR paper's DB combinations)."""

import keras
from keras import ops

from keras_memblocks.utils import argument_checks


@keras.saving.register_keras_serializable(package="keras_memblocks")
class DropBlock2D(keras.layers.Layer):
    """DropBlock: drops contiguous `block_size x block_size` regions.

    In training, block centres are drawn independently for every example and
    channel with probability
    `gamma = rate / block_size^2 * (H*W) / ((H - b + 1)(W - b + 1))` inside the
    region where a whole block fits; each centre zeroes its block, and the
    kept activations are rescaled by `count / kept`. At inference: the
    identity.
    Written here rather than taken from keras-cv: keras-cv 0.9's
    `DropBlock2D` fails under `jit_compile=True` and has no
    `compute_output_shape`.

    Args:
        rate: float in [0, 1), the fraction of activations to drop.
        block_size: int >= 1, side of a dropped block (clipped to the map).
        seed: optional int for the random blocks.
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: standard layer arguments.

    Reference:
        Ghiasi, Lin, Le. "DropBlock: A regularization method for
        convolutional networks". NeurIPS 2018.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.layers import DropBlock2D
        >>> x = np.ones((2, 8, 8, 4), "float32")
        >>> bool(np.all(DropBlock2D(0.2, 3)(x, training=False) == x))
        True
    """

    def __init__(self, rate=0.1, block_size=3, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate!r}")
        self.rate = float(rate)
        self.block_size = argument_checks.check_positive_int("block_size", block_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.data_format = argument_checks.standardize_data_format(data_format)

    def build(self, input_shape):
        height, width, _ = argument_checks.static_feature_map_dims(
            self.__class__.__name__, input_shape, self.data_format
        )
        self._hw = (height, width)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        height, width = self._hw
        block = min(self.block_size, height, width)
        valid = (height - block + 1) * (width - block + 1)
        gamma = self.rate / block**2 * (height * width) / valid
        # Seeds only where a whole block fits (centred blocks, odd or even).
        low, high = block // 2, (block - 1) // 2
        row = ops.arange(height)
        col = ops.arange(width)
        fits_row = ops.logical_and(row >= low, row < height - high)
        fits_col = ops.logical_and(col >= low, col < width - high)
        fits = ops.cast(ops.logical_and(fits_row[:, None], fits_col[None, :]), "float32")
        if self.data_format == "channels_last":
            fits = fits[None, :, :, None]
        else:
            fits = fits[None, None, :, :]
        uniform = keras.random.uniform(ops.shape(inputs), seed=self.seed_generator)
        seeds = ops.cast(uniform < gamma, "float32") * fits
        # Grow every seed into a block: a stride-1 max pool.
        dropped = ops.max_pool(
            seeds,
            pool_size=block,
            strides=1,
            padding="same",
            data_format=self.data_format,
        )
        keep = 1.0 - dropped
        scale = ops.cast(ops.size(keep), "float32") / ops.maximum(ops.sum(keep), 1.0)
        return inputs * ops.cast(keep * scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rate": self.rate,
                "block_size": self.block_size,
                "seed": self.seed,
                "data_format": self.data_format,
            }
        )
        return config
