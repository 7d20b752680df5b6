"""The blocks as Keras 3 layers."""

from keras_memblocks.layers.block_registry import get_block
from keras_memblocks.layers.block_registry import register_block
from keras_memblocks.layers.cbam_2d import CBAM2D
from keras_memblocks.layers.cc_parts import CC_FORMULATIONS
from keras_memblocks.layers.cc_parts import VARIANT_NAMES
from keras_memblocks.layers.contextual_conv_block_2d import CCBlock
from keras_memblocks.layers.contextual_conv_block_2d import ContextualConvBlock2D
from keras_memblocks.layers.contextual_conv_block_2d import cc_formulation  # noqa: F401
from keras_memblocks.layers.contextual_conv_block_2d import current_cc_formulation  # noqa: F401
from keras_memblocks.layers.contextual_conv_block_2d import set_cc_formulation
from keras_memblocks.layers.drop_block_2d import DropBlock2D
from keras_memblocks.layers.excitation_maps import EMP_NAMES
from keras_memblocks.layers.squeeze_and_remember_2d import SqueezeAndRemember2D
from keras_memblocks.layers.squeeze_and_remember_2d import SRBlock
from keras_memblocks.layers.squeeze_excite_2d import SqueezeExcite2D

# cc_formulation and current_cc_formulation, removed in 0.6.0, stay importable (not listed)
# so that old code gets a sentence saying what to write instead.
# In the order the API page shows them: the two blocks first.
__all__ = [
    "SqueezeAndRemember2D",
    "ContextualConvBlock2D",
    "SqueezeExcite2D",
    "CBAM2D",
    "DropBlock2D",
    "get_block",
    "register_block",
    "set_cc_formulation",
    "VARIANT_NAMES",
    "EMP_NAMES",
    "CC_FORMULATIONS",
    "SRBlock",
    "CCBlock",
]
