"""Options shared by the builders: where SR goes, which regulariser."""

import keras

from keras_memblocks.layers import DropBlock2D
from keras_memblocks.layers import SqueezeAndRemember2D
from keras_memblocks.layers import argument_checks

REGULARIZERS = ("dropout", "dropout2d", "dropblock")
ATTENTIONS = ("se", "cbam")


def check_sr(sr, num_modules):
    """Validates `sr=dict(module=M, num_memory_blocks=P, hidden_units=U)`.

    Returns the dict with defaults filled in, or `None`.
    """
    if sr is None:
        return None
    if not isinstance(sr, dict) or "module" not in sr:
        raise ValueError(
            "`sr` must be None or a dict with at least `module`, e.g. "
            f"dict(module=3, num_memory_blocks=10, hidden_units=8). Received: sr={sr!r}"
        )
    module = sr["module"]
    if module not in range(1, num_modules + 1):
        raise ValueError(
            f"`sr['module']` must be one of 1..{num_modules} (the block goes after "
            f"that module). Received: {module!r}"
        )
    allowed = {"module", "num_memory_blocks", "hidden_units", "hidden_activation", "use_bias"}
    unknown = sorted(set(sr) - allowed)
    if unknown:
        raise ValueError(f"Unknown `sr` keys {unknown}. Valid keys: {sorted(allowed)}")
    return {"num_memory_blocks": 2, "hidden_units": 8, **sr}


def sr_layer(sr, name):
    """The SR block an `sr` dict describes."""
    kwargs = {k: v for k, v in sr.items() if k != "module"}
    return SqueezeAndRemember2D(name=name, **kwargs)


def check_regularizer(regularizer):
    if regularizer is not None:
        argument_checks.check_choice("regularizer", regularizer, REGULARIZERS)
    return regularizer


def check_attention(attention):
    if attention is not None:
        argument_checks.check_choice("attention", attention, ATTENTIONS)
    return attention


def regularizer_layer(regularizer, rate, block_size, name):
    """Dropout (D), spatial dropout (D2D) or DropBlock (DB)."""
    if regularizer == "dropout":
        return keras.layers.Dropout(rate, name=name)
    if regularizer == "dropout2d":
        return keras.layers.SpatialDropout2D(rate, name=name)
    return DropBlock2D(rate, block_size, name=name)
