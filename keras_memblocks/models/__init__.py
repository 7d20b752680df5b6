"""The papers' networks, and blocks inserted into any functional model."""

import importlib.util as _importlib_util

from keras_memblocks.models.batch_norm_calibration import calibrate_batch_norm
from keras_memblocks.models.block_insertion import insert_blocks
from keras_memblocks.models.block_insertion import remove_blocks
from keras_memblocks.models.block_placement import BlockPlacement
from keras_memblocks.models.cifar_resnet_model import cifar_resnet
from keras_memblocks.models.cifar_vgg_model import cifar_vgg
from keras_memblocks.models.deeplabv3_model import deeplabv3
from keras_memblocks.models.fcn_model import fcn
from keras_memblocks.models.parameter_counts import count_trainable_parameters
from keras_memblocks.models.resnet50_model import resnet50
from keras_memblocks.models.vgg_like_model import vgg_like
from keras_memblocks.models.weight_transfer import copy_weights_by_name

__all__ = [
    "BlockPlacement",
    "calibrate_batch_norm",
    "cifar_resnet",
    "cifar_vgg",
    "copy_weights_by_name",
    "count_trainable_parameters",
    "deeplabv3",
    "fcn",
    "insert_blocks",
    "remove_blocks",
    "resnet50",
    "vgg_like",
]

# With the `[hub]` extra: the keras-hub backbone that `insert_blocks` returns,
# registered here so that `.keras` files holding it load after the import.
if _importlib_util.find_spec("keras_hub") is not None:
    from keras_memblocks.models.hub_models import BackboneWithBlocks  # noqa: F401

    __all__.append("BackboneWithBlocks")
