"""The SR paper's regularisers (D, D2D, DB), placed by the ResNet builders."""

import keras

from keras_memblocks.layers import DropBlock2D
from keras_memblocks.utils import argument_checks

REGULARIZERS = ("dropout", "dropout2d", "dropblock")


def check_regularizer(regularizer):
    if regularizer is not None:
        argument_checks.check_choice("regularizer", regularizer, REGULARIZERS)
    return regularizer


def regularizer_layer(regularizer, rate, block_size, name):
    """Dropout (D), spatial dropout (D2D) or DropBlock (DB)."""
    if regularizer == "dropout":
        return keras.layers.Dropout(rate, name=name)
    if regularizer == "dropout2d":
        return keras.layers.SpatialDropout2D(rate, name=name)
    return DropBlock2D(rate, block_size, name=name)
