"""The CC paper's VGG-like networks (its Table 1)."""

import keras

from keras_memblocks.models.block_placement import Placements
from keras_memblocks.utils import argument_checks

# dataset -> (input shape, classes, convs per stage, stages, pool size, width growth)
_CONFIGS = {
    "mnist": ((28, 28, 1), 10, 1, 2, 4, 4),
    "cifar10": ((32, 32, 3), 10, 1, 4, 2, 2),
    "cifar100": ((32, 32, 3), 100, 2, 4, 2, 2),
}
DATASETS = tuple(_CONFIGS)


def vgg_like(dataset, *, width, blocks=None, num_classes=None, input_shape=None):
    """The CC paper's VGG-like net for `dataset` (its Table 1).

    MNIST: [Conv2D 3x3 relu, MaxPool 4x4] x 2, width x4 per stage; CIFAR-10:
    [Conv2D, MaxPool 2x2] x 4; CIFAR-100: [Conv2D, Conv2D, MaxPool 2x2] x 4,
    width x2 per stage. "same" padding throughout (pools too, which gives
    the paper's 2x2 MNIST output). Head: Flatten, Dense(128, relu),
    Dense(classes, softmax).

    Args:
        dataset: `"mnist"`, `"cifar10"` or `"cifar100"`.
        width: int >= 1, filters of the first conv (the paper: 1 ... 48).
        blocks: where blocks go (see `keras_memblocks.models.block_placement`):
            `after="conv"` puts one after every Conv2D (after its ReLU), the
            CC paper's placement; `after=s` after stage s's pool. `None`:
            the plain ("standard") net.
        num_classes: defaults to the dataset's.
        input_shape: defaults to the dataset's.

    Returns:
        A functional `keras.Model`; layers named `stage{s}_conv{i}`,
        `stage{s}_conv{i}_{block}`, `stage{s}_pool`, `fc`, `predictions`.

    Examples:
        >>> from keras_memblocks.models import vgg_like
        >>> vgg_like("cifar100", width=32).count_params()
        1316356
        >>> cc = {"block": "cc", "after": "conv", "variant": "reduced"}
        >>> vgg_like("cifar100", width=32, blocks=cc).count_params()
        1511428
    """
    argument_checks.check_choice("dataset", dataset, DATASETS)
    width = argument_checks.check_positive_int("width", width)
    if num_classes is not None:
        num_classes = argument_checks.check_positive_int("num_classes", num_classes)
    default_shape, default_classes, convs, stages, pool, growth = _CONFIGS[dataset]
    placements = Placements(blocks, "vgg_like", num_modules=stages, sites=("conv",))
    inputs = keras.Input(input_shape or default_shape, name="image")
    x = inputs
    filters = width
    for stage in range(1, stages + 1):
        for conv in range(1, convs + 1):
            name = f"stage{stage}_conv{conv}"
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
            x = placements.at("conv", x, name)
        x = keras.layers.MaxPooling2D(pool, padding="same", name=f"stage{stage}_pool")(x)
        x = placements.after_module(x, stage, f"stage{stage}")
        filters *= growth
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(
        default_classes if num_classes is None else num_classes,
        activation="softmax",
        name="predictions",
        dtype="float32",  # the softmax stays float32 under mixed precision
    )(x)
    return keras.Model(inputs, outputs, name=f"vgg_like_{dataset}_w{width}{placements.suffix}")
