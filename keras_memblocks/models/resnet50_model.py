"""ImageNet ResNet50 with `keras.applications` layer names (SR paper Table III)."""

import keras

from keras_memblocks.models import regularizers
from keras_memblocks.models.block_placement import Placements
from keras_memblocks.models.weight_transfer import copy_weights_by_name
from keras_memblocks.utils import argument_checks

_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # conv2_x .. conv5_x
_BN = dict(axis=-1, epsilon=1.001e-5)
OUTPUT_STRIDES = (8, 16, 32)


def _bottleneck(x, filters, strides, dilation, conv_shortcut, placements, name):
    """`keras.applications.resnet`'s block1, with optional dilation."""
    if conv_shortcut:
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=strides, name=f"{name}_0_conv")(x)
        shortcut = keras.layers.BatchNormalization(**_BN, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = keras.layers.Conv2D(filters, 1, strides=strides, name=f"{name}_1_conv")(x)
    x = keras.layers.BatchNormalization(**_BN, name=f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = keras.layers.Conv2D(
        filters, 3, padding="same", dilation_rate=dilation, name=f"{name}_2_conv"
    )(x)
    x = keras.layers.BatchNormalization(**_BN, name=f"{name}_2_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = keras.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = keras.layers.BatchNormalization(**_BN, name=f"{name}_3_bn")(x)
    x = placements.at("residual", x, name)  # SE / CBAM: before the addition
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def resnet50(
    num_classes=1000,
    *,
    input_shape=(224, 224, 3),
    blocks=None,
    regularizer=None,
    weights=None,
    include_top=True,
    output_stride=32,
    regularizer_rate=0.1,
    drop_block_size=7,
):
    """ResNet50 (v1, as in `keras.applications`) with the SR paper's options.

    Every layer has its `keras.applications.ResNet50` name, so ImageNet
    weights published for that model load into this one by name (blocks
    and regularisers are extra layers and keep their initial values).
    Modules 1-4 are the stages `conv2_x` ... `conv5_x`.

    Args:
        num_classes: classifier width.
        input_shape: image shape; `(None, None, 3)` is allowed without SR
            (its memories are H x W x C).
        blocks: where blocks go (see `keras_memblocks.models.block_placement`):
            `after=M` after module M (named `module{M}_{block}`), or
            `after="residual"` on every residual branch before the addition.
        regularizer: `None`, `"dropout"`, `"dropout2d"` or `"dropblock"`
            after modules 3 and 4 (before a block placed there).
        weights: `None`, or the path of a weights file saved from
            `keras.applications.ResNet50` (e.g. the published ImageNet file):
            its layers are copied by name.
        include_top: with `False`, the model ends at `conv5_block3_out`.
        output_stride: 32 (classification), or 16 / 8 for dense prediction:
            the last one / two stages keep their resolution and dilate their
            3x3 convs instead (DeepLabv3).
        regularizer_rate: the regulariser's drop rate.
        drop_block_size: DropBlock's block size.

    Returns:
        A functional `keras.Model` with a `pyramid_outputs` attribute
        `{"P2": ..., "P5": ...}`: the output tensors of the four stages.

    Examples:
        >>> from keras_memblocks.models import resnet50, count_trainable_parameters
        >>> base = count_trainable_parameters(resnet50())
        >>> sr = {"block": "sr", "after": 3, "num_memory_blocks": 2, "hidden_units": 16}
        >>> with_sr = resnet50(blocks=sr)
        >>> added = with_sr.get_layer("module3_sr").count_params() - (16 + 2)  # eq. 1: no biases
        >>> added, round(100 * added / base, 2)   # the paper: 405,600, +1.59 %
        (405600, 1.59)
    """
    num_classes = argument_checks.check_positive_int("num_classes", num_classes)
    argument_checks.check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    placements = Placements(blocks, "resnet50", num_modules=4, sites=("residual",))
    regularizers.check_regularizer(regularizer)

    inputs = keras.Input(input_shape, name="input_layer")
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = keras.layers.BatchNormalization(**_BN, name="conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    stride, dilation, pyramid = 4, 1, {}
    for module, (filters, blocks) in enumerate(_STAGES, 1):
        block_strides = 1 if module == 1 else 2
        if module > 1 and stride >= output_stride:
            dilation, block_strides = dilation * 2, 1
        stride *= block_strides
        for block in range(1, blocks + 1):
            x = _bottleneck(
                x,
                filters,
                block_strides if block == 1 else 1,
                dilation,
                conv_shortcut=block == 1,
                placements=placements,
                name=f"conv{module + 1}_block{block}",
            )
        if regularizer is not None and module >= 3:
            x = regularizers.regularizer_layer(
                regularizer, regularizer_rate, drop_block_size, f"module{module}_{regularizer}"
            )(x)
        x = placements.after_module(x, module, f"module{module}")
        pyramid[f"P{module + 1}"] = x
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(
            num_classes, activation="softmax", name="predictions", dtype="float32"
        )(x)
    model = keras.Model(inputs, x, name="resnet50")
    model.pyramid_outputs = pyramid
    if weights is not None:
        copy_weights_by_name(_reference_resnet50(weights, num_classes, include_top), model)
    return model


def _reference_resnet50(weights, num_classes, include_top):
    # keras.applications knows the layout of its own published files.
    return keras.applications.ResNet50(
        weights=weights,
        include_top=include_top,
        classes=num_classes,
        input_shape=None if include_top else (None, None, 3),
    )
