"""Deprecated since 0.2.0: the extras and their error live in `keras_memblocks.utils.extras`.

`MissingTensorFlowError` is now `keras_memblocks.utils.extras.MissingExtraError`
(raised for every missing extra, TensorFlow's included), so code catching
the old name keeps working. This module goes in 0.4.0.
"""

import warnings

from keras_memblocks.utils.extras import MissingExtraError as MissingTensorFlowError

warnings.warn(
    "keras_memblocks.tensorflow_stack is deprecated since 0.2.0 and goes in 0.4.0: catch "
    "keras_memblocks.utils.extras.MissingExtraError instead of MissingTensorFlowError.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["MissingTensorFlowError"]
