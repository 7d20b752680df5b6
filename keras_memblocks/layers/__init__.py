"""The blocks as Keras 3 layers."""

from keras_memblocks.layers.block_registry import get_block
from keras_memblocks.layers.block_registry import register_block
from keras_memblocks.layers.cbam_2d import CBAM2D
from keras_memblocks.layers.contextual_conv_block_2d import CC_FORMULATIONS
from keras_memblocks.layers.contextual_conv_block_2d import VARIANT_NAMES
from keras_memblocks.layers.contextual_conv_block_2d import CCBlock
from keras_memblocks.layers.contextual_conv_block_2d import ContextualConvBlock2D
from keras_memblocks.layers.contextual_conv_block_2d import cc_formulation
from keras_memblocks.layers.contextual_conv_block_2d import current_cc_formulation
from keras_memblocks.layers.drop_block_2d import DropBlock2D
from keras_memblocks.layers.excitation_maps import EMP_NAMES
from keras_memblocks.layers.squeeze_and_remember_2d import SqueezeAndRemember2D
from keras_memblocks.layers.squeeze_and_remember_2d import SRBlock
from keras_memblocks.layers.squeeze_excite_2d import SqueezeExcite2D

__all__ = [
    "CBAM2D",
    "CCBlock",
    "CC_FORMULATIONS",
    "ContextualConvBlock2D",
    "DropBlock2D",
    "EMP_NAMES",
    "SRBlock",
    "SqueezeAndRemember2D",
    "SqueezeExcite2D",
    "VARIANT_NAMES",
    "get_block",
    "cc_formulation",
    "current_cc_formulation",
    "register_block",
]
