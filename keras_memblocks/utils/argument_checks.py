"""Argument and input-shape checks shared by the blocks.

Every failure is a `ValueError` that names the argument, quotes the bad value
and says what is allowed, so a misconfigured model fails when it is built,
not somewhere inside a training step.
"""

import numbers

import keras

from keras_memblocks.utils.files import shorten

DATA_FORMATS = ("channels_last", "channels_first")


def check_positive_int(name, value):
    """Returns `value` as a Python int if it is an integer >= 1 (a NumPy integer
    counts), else raises `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={shorten(value)}")
    return int(value)


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices`, else raises `ValueError`."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"Unknown {name} {value!r}. Valid values for `{name}`: {allowed}.")
    return value


def standardize_data_format(data_format):
    """Resolves `None` to Keras' global image data format and validates."""
    if data_format is None:
        return keras.config.image_data_format()
    return check_choice("data_format", data_format, DATA_FORMATS)


def feature_map_dims(layer_name, input_shape, data_format):
    """Returns `(height, width, channels)` of a 4-D feature-map shape.

    Raises `ValueError` for a shape that is not 4-D or whose channel axis,
    as named by `data_format`, is unknown. Height and width may be `None`;
    the caller decides whether it needs them.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        layout = "(batch, H, W, C)" if data_format == "channels_last" else ("(batch, C, H, W)")
        raise ValueError(
            f"{layer_name} expects a 4-D feature map {layout} "
            f"(data_format={data_format!r}). Received input_shape={input_shape}"
        )
    if data_format == "channels_last":
        _, height, width, channels = input_shape
        other_format, other_channels = "channels_first", input_shape[1]
    else:
        _, channels, height, width = input_shape
        other_format, other_channels = "channels_last", input_shape[-1]
    if channels is None:
        hint = ""
        if other_channels is not None:
            hint = f" The shape looks like {other_format} input: pass data_format={other_format!r}."
        raise ValueError(
            f"{layer_name} needs a known channel dimension, but the channel "
            f"axis for data_format={data_format!r} is None in input_shape="
            f"{input_shape}.{hint}"
        )
    return height, width, channels


def check_static_spatial_dims(layer_name, height, width, input_shape):
    """Raises `ValueError` unless height and width are both known."""
    if height is None or width is None:
        raise ValueError(
            f"{layer_name} holds weights whose shape depends on the height and "
            f"width of its input, so both must be known when it is built. "
            f"Received input_shape={tuple(input_shape)}. Give the model a fixed "
            "`shape=` in `keras.Input`."
        )


def static_feature_map_dims(layer_name, input_shape, data_format):
    """`feature_map_dims`, requiring height and width to be known too."""
    height, width, channels = feature_map_dims(layer_name, input_shape, data_format)
    check_static_spatial_dims(layer_name, height, width, input_shape)
    if 0 in (height, width, channels):
        raise ValueError(
            f"{layer_name} needs a feature map with at least one pixel and one channel; "
            f"received (H, W, C)={(height, width, channels)} (input_shape={tuple(input_shape)}). "
            "Place the block earlier in the network, where the map is not empty."
        )
    return height, width, channels


def check_same_dims(layer_name, built_dims, input_shape, data_format):
    """Raises `ValueError` if a call's (H, W, C) differ from the built ones.

    `built_dims` is `(height, width, channels)`; a `None` in the call's shape
    is accepted (a symbolic batch or an unknown dimension at trace time), and
    so is any size along an axis built as `None` (a layer built for any size).
    """
    height, width, channels = feature_map_dims(layer_name, input_shape, data_format)
    for got, expected in zip((height, width, channels), built_dims):
        if got is not None and expected is not None and got != expected:
            raise ValueError(
                f"{layer_name} was built for inputs with (H, W, C)="
                f"{tuple(built_dims)} and cannot take (H, W, C)="
                f"{(height, width, channels)} (input_shape="
                f"{tuple(input_shape)}). Its weights are tied to one input "
                "size; build a new layer for another size."
            )


def resolve_activation(activation):
    """`(function, config value)` of an activation argument.

    Resolved at once, so an unknown name fails when the layer is made; the
    config value is the name as given, or the serialised callable.
    """
    function = keras.activations.get(activation)
    if activation is not None and not isinstance(activation, str):
        activation = keras.activations.serialize(function)
    return function, activation
