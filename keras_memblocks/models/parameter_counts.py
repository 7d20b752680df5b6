"""Parameter counts as the papers (PyTorch) state them."""

import math


def count_trainable_parameters(model):
    """Trainable parameters only.

    PyTorch's `parameters()`, which the papers count, excludes BatchNorm's
    moving statistics; Keras' `count_params()` includes them.

    Examples:
        >>> from keras_memblocks.models import cifar_resnet, count_trainable_parameters
        >>> count_trainable_parameters(cifar_resnet(18))
        11220132
    """
    return sum(math.prod(w.shape) for w in model.trainable_weights)
