"""The CC paper's VGG-like networks (its Table 1)."""

import keras

from keras_memblocks.layers import argument_checks
from keras_memblocks.layers import get_block

# dataset -> (input shape, classes, convs per stage, stages, pool size, width growth)
_CONFIGS = {
    "mnist": ((28, 28, 1), 10, 1, 2, 4, 4),
    "cifar10": ((32, 32, 3), 10, 1, 4, 2, 2),
    "cifar100": ((32, 32, 3), 100, 2, 4, 2, 2),
}
DATASETS = tuple(_CONFIGS)


def vgg_like(dataset, width, block=None, num_classes=None, input_shape=None,
             **block_kwargs):
    """The CC paper's VGG-like net for `dataset`, a block after every conv.

    MNIST: [Conv2D 3x3 relu, MaxPool 4x4] x 2, width x4 per stage; CIFAR-10:
    [Conv2D, MaxPool 2x2] x 4; CIFAR-100: [Conv2D, Conv2D, MaxPool 2x2] x 4,
    width x2 per stage. "same" padding throughout (pools too, which gives
    the paper's 2x2 MNIST output). Head: Flatten, Dense(128, relu),
    Dense(classes, softmax).

    Args:
        dataset: `"mnist"`, `"cifar10"` or `"cifar100"`.
        width: int >= 1, filters of the first conv (the paper: 1 ... 48).
        block: a block put after every Conv2D (after its ReLU): a name
            `get_block` resolves (`"cc"`, `"sr"`, `"se"`, ...), a class, or
            `None` for the plain net.
        num_classes: defaults to the dataset's.
        input_shape: defaults to the dataset's.
        **block_kwargs: arguments of every block, e.g. `variant="scalar"`.

    Returns:
        A functional `keras.Model`; layers named `stage{s}_conv{i}`,
        `stage{s}_conv{i}_block`, `stage{s}_pool`, `fc`, `predictions`.

    Example:

    >>> from keras_memblocks.models import vgg_like
    >>> vgg_like("cifar100", 32).count_params()
    1316356
    >>> vgg_like("cifar100", 32, block="cc", variant="reduced").count_params()
    1511428
    """
    argument_checks.check_choice("dataset", dataset, DATASETS)
    argument_checks.check_positive_int("width", width)
    default_shape, default_classes, convs, stages, pool, growth = _CONFIGS[dataset]
    if block is not None and not isinstance(block, (str, type)):
        raise ValueError(
            "`block` must be a name, a layer class or None: one instance "
            f"cannot sit after every conv. Received: {block!r}"
        )
    inputs = keras.Input(input_shape or default_shape, name="image")
    x = inputs
    filters = width
    for stage in range(1, stages + 1):
        for conv in range(1, convs + 1):
            name = f"stage{stage}_conv{conv}"
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
            if block is not None:
                x = get_block(block, name=f"{name}_block", **block_kwargs)(x)
        x = keras.layers.MaxPooling2D(pool, padding="same", name=f"stage{stage}_pool")(x)
        filters *= growth
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(
        num_classes or default_classes, activation="softmax", name="predictions",
        dtype="float32",  # the softmax stays float32 under mixed precision
    )(x)
    suffix = "" if block is None else f"_{block if isinstance(block, str) else block.__name__}"
    return keras.Model(inputs, outputs, name=f"vgg_like_{dataset}_w{width}{suffix}")
