"""CIFAR VGG-16/19 of the SR paper (Tables I and V)."""

import keras

from keras_memblocks.models.block_placement import Placements
from keras_memblocks.utils import argument_checks

_CONFIGS = {
    16: ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3),
    19: ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}
# The SR paper: VGG convs initialised N(0, sqrt(2/n)), n = k*k*out_channels.
_CONV_INIT = keras.initializers.VarianceScaling(
    2.0, mode="fan_out", distribution="untruncated_normal"
)


def cifar_vgg(depth, *, num_classes=100, blocks=None, input_shape=(32, 32, 3), dropout=0.5):
    """CIFAR VGG-16/19 (with batch norm), dropout only in its FC layers.

    Five modules of 3x3 conv + BN + ReLU layers, each ending in a 2x2 max
    pool; classifier Dropout, Dense 512, ReLU, Dropout, Dense 512, ReLU,
    Dense(num_classes) with softmax.

    Args:
        depth: 16 or 19.
        num_classes: classifier width.
        blocks: where blocks go (see `keras_memblocks.models.block_placement`):
            `after=M` after module M's pool (1..5; the SR paper's placement),
            `after="conv"` after every conv's ReLU.
        input_shape: image shape.
        dropout: rate of the two dropout layers of the classifier.

    Examples:
        >>> from keras_memblocks.models import cifar_vgg
        >>> sr = {"block": "sr", "after": 4, "num_memory_blocks": 10}
        >>> cifar_vgg(19, blocks=sr).get_layer("module4_sr").output.shape
        (None, 2, 2, 512)
    """
    if depth not in _CONFIGS:
        raise ValueError(f"`depth` must be one of {sorted(_CONFIGS)}. Received: depth={depth!r}")
    num_classes = argument_checks.check_positive_int("num_classes", num_classes)
    placements = Placements(blocks, "cifar_vgg", num_modules=5, sites=("conv",))
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for module, widths in enumerate(_CONFIGS[depth], 1):
        for i, filters in enumerate(widths, 1):
            name = f"module{module}_conv{i}"
            x = keras.layers.Conv2D(
                filters, 3, padding="same", kernel_initializer=_CONV_INIT, name=name
            )(x)
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
            x = placements.at("conv", x, name)
        x = keras.layers.MaxPooling2D(2, name=f"module{module}_pool")(x)
        x = placements.after_module(x, module, f"module{module}")
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        x = keras.layers.Dense(512, activation="relu", name=f"fc{i}")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="predictions", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name=f"cifar_vgg{depth}{placements.suffix}")
