"""The blocks as Keras 3 layers."""

from keras_memblocks.layers.block_registry import get_block
from keras_memblocks.layers.block_registry import register_block
from keras_memblocks.layers.contextual_conv_block_2d import CCBlock
from keras_memblocks.layers.contextual_conv_block_2d import ContextualConvBlock2D
from keras_memblocks.layers.contextual_conv_block_2d import VARIANT_NAMES
from keras_memblocks.layers.excitation_maps import EMP_NAMES
from keras_memblocks.layers.squeeze_and_remember_2d import SRBlock
from keras_memblocks.layers.squeeze_and_remember_2d import SqueezeAndRemember2D

__all__ = [
    "CCBlock",
    "ContextualConvBlock2D",
    "EMP_NAMES",
    "SRBlock",
    "SqueezeAndRemember2D",
    "VARIANT_NAMES",
    "get_block",
    "register_block",
]
