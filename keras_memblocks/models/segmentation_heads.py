"""Heads shared by the segmentation models: ASPP, FCN head, upsampling."""

import keras


def conv_bn_relu(x, filters, kernel_size, name, dilation=1):
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        dilation_rate=dilation,
        use_bias=False,
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def aspp(x, rates, filters=256, name="aspp"):
    """Atrous spatial pyramid pooling: 1x1, three atrous 3x3, image pooling."""
    height, width = x.shape[1], x.shape[2]
    branches = [conv_bn_relu(x, filters, 1, f"{name}_0")]
    for i, rate in enumerate(rates, 1):
        branches.append(conv_bn_relu(x, filters, 3, f"{name}_{i}", dilation=rate))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_bn_relu(pooled, filters, 1, f"{name}_pool")
    # Exact broadcast of a 1x1 map (nearest), no interpolation involved.
    pooled = keras.layers.UpSampling2D((height, width), name=f"{name}_pool_upsample")(pooled)
    branches.append(pooled)
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return conv_bn_relu(x, filters, 1, f"{name}_project")


def classifier(x, num_classes, upsample, dropout, name, hidden=None):
    """[3x3 conv BN ReLU, dropout,] 1x1 conv to classes, bilinear upsample, softmax."""
    if hidden is not None:
        x = conv_bn_relu(x, hidden, 3, f"{name}_hidden")
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = keras.layers.Conv2D(num_classes, 1, name=f"{name}_logits")(x)
    x = keras.layers.UpSampling2D(upsample, interpolation="bilinear", name=f"{name}_upsample")(x)
    return keras.layers.Softmax(name=name, dtype="float32")(x)


def check_input_shape(input_shape, output_stride):
    height, width = input_shape[0], input_shape[1]
    if height is None or width is None or height % output_stride or width % output_stride:
        raise ValueError(
            f"`input_shape` must have a known height and width divisible by "
            f"output_stride={output_stride}. Received: input_shape={tuple(input_shape)}"
        )
