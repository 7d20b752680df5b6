"""Initialisers, and the dense weights built with them, that the blocks share."""

import math

import keras


def fan_in_uniform(fan_in):
    """PyTorch's default conv/linear initialiser: U(-sqrt(1/fan_in), +...).

    The SR paper trained with PyTorch defaults. Keras' built-in variance
    scaling initialisers derive the fan-in from the weight's shape, which is
    wrong for per-channel (depthwise-like) weights, so the bound is given
    explicitly from the true fan-in.
    """
    bound = math.sqrt(1.0 / fan_in)
    return keras.initializers.RandomUniform(minval=-bound, maxval=bound)


def add_dense_weights(layer, name, fan_in, units):
    """A PyTorch-initialised dense layer's `{name}_kernel` (fan_in, units)
    and zero `{name}_bias` (units,), added to `layer`; returns both."""
    kernel = layer.add_weight(
        name=f"{name}_kernel", shape=(fan_in, units), initializer=fan_in_uniform(fan_in)
    )
    bias = layer.add_weight(name=f"{name}_bias", shape=(units,), initializer="zeros")
    return kernel, bias
