"""Blocks chosen by name: `get_block("cc", variant="full")`."""

import keras

from keras_memblocks.layers.cbam_2d import CBAM2D
from keras_memblocks.layers.contextual_conv_block_2d import ContextualConvBlock2D
from keras_memblocks.layers.drop_block_2d import DropBlock2D
from keras_memblocks.layers.squeeze_and_remember_2d import SqueezeAndRemember2D
from keras_memblocks.layers.squeeze_excite_2d import SqueezeExcite2D

BLOCKS = {
    "sr": SqueezeAndRemember2D,
    "squeeze_and_remember": SqueezeAndRemember2D,
    "cc": ContextualConvBlock2D,
    "contextual_conv": ContextualConvBlock2D,
    "se": SqueezeExcite2D,
    "squeeze_excite": SqueezeExcite2D,
    "cbam": CBAM2D,
    "dropblock": DropBlock2D,
}


def register_block(name, block_class):
    """Makes `block_class` resolvable by `get_block(name)`.

    Users may register their own blocks; `get_block` (and every builder's
    `block=` argument) then resolves them.

    Examples:
        >>> import keras
        >>> from keras_memblocks.layers import get_block, register_block
        >>> class Halve(keras.layers.Layer):
        ...     def call(self, x):
        ...         return x / 2
        >>> register_block("halve", Halve)
        >>> type(get_block("halve")).__name__
        'Halve'
    """
    if not (isinstance(block_class, type) and issubclass(block_class, keras.layers.Layer)):
        raise ValueError(
            f"`block_class` must be a keras.layers.Layer subclass. Received: {block_class!r}"
        )
    BLOCKS[name.lower()] = block_class


def get_block(block, **kwargs):
    """Resolves a block given by name, class, instance or `None`.

    Args:
        block: a registered name (`"sr"`, `"cc"`, ... case-insensitive), a
            `keras.layers.Layer` subclass, a layer instance, or `None`.
        **kwargs: constructor arguments when `block` is a name or a class.

    Returns:
        A new layer instance, the given instance, or `None` for `None`.

    Examples:
        >>> from keras_memblocks.layers import get_block
        >>> get_block("cc", variant="scalar").variant
        'scalar'
        >>> get_block(None) is None
        True
    """
    if block is None:
        if kwargs:
            raise ValueError(f"block=None takes no arguments. Received: {sorted(kwargs)}")
        return None
    if isinstance(block, keras.layers.Layer):
        if kwargs:
            raise ValueError(
                "A block given as a layer instance takes no further "
                f"arguments. Received: {sorted(kwargs)}"
            )
        return block
    if isinstance(block, str):
        key = block.lower()
        if key not in BLOCKS:
            raise ValueError(
                f"Unknown block {block!r}. Valid names: "
                f"{', '.join(sorted(BLOCKS))}; or pass a layer class, a layer "
                "instance, or None."
            )
        return BLOCKS[key](**kwargs)
    if isinstance(block, type) and issubclass(block, keras.layers.Layer):
        return block(**kwargs)
    raise ValueError(
        f"Cannot resolve block {block!r}: expected a name "
        f"({', '.join(sorted(BLOCKS))}), a keras.layers.Layer class or "
        "instance, or None."
    )
