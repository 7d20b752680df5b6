"""CIFAR ResNets of the SR paper (Tables I, II, V)."""

import keras

from keras_memblocks.models import regularizers
from keras_memblocks.models.block_placement import Placements
from keras_memblocks.utils import argument_checks

# depth -> (bottleneck, blocks per module)
_DEPTHS = {18: (False, (2, 2, 2, 2)), 34: (False, (3, 4, 6, 3)), 50: (True, (3, 4, 6, 3))}
# The paper trains with Kaiming-uniform initialisation.
_CONV_INIT = "he_uniform"


def _conv_bn(x, filters, kernel_size, strides, name, relu=True):
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=_CONV_INIT,
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _residual_block(x, planes, strides, bottleneck, placements, name):
    out_channels = planes * 4 if bottleneck else planes
    if bottleneck:
        y = _conv_bn(x, planes, 1, 1, f"{name}_1")
        y = _conv_bn(y, planes, 3, strides, f"{name}_2")
        y = _conv_bn(y, out_channels, 1, 1, f"{name}_3", relu=False)
    else:
        y = _conv_bn(x, planes, 3, strides, f"{name}_1")
        y = _conv_bn(y, planes, 3, 1, f"{name}_2", relu=False)
    y = placements.at("residual", y, name)  # SE / CBAM: before the addition
    shortcut = x
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = _conv_bn(x, out_channels, 1, strides, f"{name}_0", relu=False)
    x = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def cifar_resnet(
    depth,
    *,
    num_classes=100,
    blocks=None,
    regularizer=None,
    input_shape=(32, 32, 3),
    regularizer_rate=0.1,
    drop_block_size=3,
    width=64,
):
    """A CIFAR ResNet-18/34/50 with the SR paper's options.

    Layout (the common CIFAR adaptation): a 3x3 stride-1 stem with 64
    filters and no max pool, then four modules of basic (18, 34) or
    bottleneck (50) blocks with 64/128/256/512 planes at 32/16/8/4 pixels,
    global average pooling and a softmax classifier. Convs have no bias and
    He-uniform initialisation.

    Args:
        depth: 18, 34 or 50.
        num_classes: classifier width (100 for CIFAR-100).
        blocks: where blocks go (see `keras_memblocks.models.block_placement`):
            `after=M` after module M (1..4; the SR paper's SR placement),
            `after="residual"` on every residual branch before the addition
            (its SE / CBAM placement). A list gives both (its Table II).
        regularizer: `None`, `"dropout"` (D), `"dropout2d"` (D2D) or
            `"dropblock"` (DB), applied to the outputs of modules 3 and 4
            (the paper does not publish placement or rates; this follows the
            DropBlock paper's placement), before a block placed there.
        input_shape: image shape.
        regularizer_rate: drop rate of the regulariser.
        drop_block_size: block size of DropBlock.
        width: planes of the stem and first module (64 in the paper); the
            modules have width x (1, 2, 4, 8). Smaller values make quick
            CPU-sized ResNets.

    Returns:
        A functional `keras.Model`; layers named `module{m}_block{b}_{op}`,
        `module{m}_{block}`, `module{m}_block{b}_{block}`, `module{m}_{regularizer}`.

    Examples:
        >>> from keras_memblocks.models import cifar_resnet
        >>> sr = {"block": "sr", "after": 3, "num_memory_blocks": 10, "hidden_units": 8}
        >>> model = cifar_resnet(18, blocks=sr)
        >>> model.get_layer("module3_sr").count_params()  # 256 + 64*8 + 8*10 + 10*256*64 + 18
        164706
    """
    if depth not in _DEPTHS:
        raise ValueError(f"`depth` must be one of {sorted(_DEPTHS)}. Received: depth={depth!r}")
    num_classes = argument_checks.check_positive_int("num_classes", num_classes)
    width = argument_checks.check_positive_int("width", width)
    placements = Placements(blocks, "cifar_resnet", num_modules=4, sites=("residual",))
    regularizers.check_regularizer(regularizer)
    bottleneck, blocks_per_module = _DEPTHS[depth]

    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, width, 3, 1, "stem")
    planes_per_module = [width * factor for factor in (1, 2, 4, 8)]
    for module, (planes, blocks) in enumerate(zip(planes_per_module, blocks_per_module), 1):
        for block in range(1, blocks + 1):
            strides = 2 if module > 1 and block == 1 else 1
            x = _residual_block(
                x, planes, strides, bottleneck, placements, f"module{module}_block{block}"
            )
        if regularizer is not None and module >= 3:
            x = regularizers.regularizer_layer(
                regularizer,
                regularizer_rate,
                drop_block_size,
                f"module{module}_{regularizer}",
            )(x)
        x = placements.after_module(x, module, f"module{module}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="predictions", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name=f"cifar_resnet{depth}{placements.suffix}")
