"""Blocks inserted into functional models we did not write."""

import difflib

import keras

from keras_memblocks.layers import get_block
from keras_memblocks.models.weight_transfer import copy_weights_by_name


def insert_blocks(model, block, after, **block_kwargs):
    """Returns a new functional model with a block after the chosen layers.

    The graph is rebuilt with `keras.models.clone_model`, whose
    `call_function` hook applies a fresh block to the output of every chosen
    layer; then every original layer's weights are copied into its clone, so
    the new model computes what the old one did wherever the blocks are the
    identity (SR and the input-dependent CC variants start as the identity).
    Branches and skip connections are kept: everything that consumed a
    chosen layer's output now consumes the block's.

    Args:
        model: a functional `keras.Model` (e.g. `keras.applications`).
        block: a block name `get_block` resolves (`"sr"`, `"cc"`, `"se"`,
            `"cbam"`), a layer class, or a callable `f(layer) -> new layer`.
        after: a list of layer names, or a predicate `f(layer) -> bool`.
        **block_kwargs: arguments of every block (with a name or a class).

    Returns:
        A new `keras.Model`; each inserted block is named
        `"{layer.name}_{block}"`.

    Example:

    >>> import keras
    >>> from keras_memblocks.models import insert_blocks
    >>> base = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    >>> model = insert_blocks(base, "cc", after=["block_6_project_BN"])
    >>> model.get_layer("block_6_project_BN_cc").output.shape
    (None, 6, 6, 64)
    """
    layers_by_name = {layer.name: layer for layer in model.layers}
    if callable(after) and not isinstance(after, (list, tuple, str)):
        targets = [layer.name for layer in model.layers if after(layer)]
        if not targets:
            raise ValueError("The `after` predicate selected no layer of the model.")
    else:
        targets = [after] if isinstance(after, str) else list(after)
        _check_names(model, targets, layers_by_name)
    for name in targets:
        output = layers_by_name[name].output
        if isinstance(output, (list, tuple)) or len(output.shape) != 4:
            shape = [o.shape for o in output] if isinstance(output, (list, tuple)) else output.shape
            raise ValueError(
                f"Layer {name!r} outputs {shape}, not a 4-D feature map: a block cannot follow it."
            )
    if isinstance(block, keras.layers.Layer):
        raise ValueError(
            "`block` must be a name, a layer class or a factory: one layer "
            "instance cannot be inserted at several places."
        )
    suffix = block if isinstance(block, str) else getattr(block, "__name__", "block")

    def new_block(layer):
        name = f"{layer.name}_{suffix.lower()}"
        if isinstance(block, str) or isinstance(block, type):
            return get_block(block, name=name, **block_kwargs)
        return block(layer)

    target_set = set(targets)

    def call_function(layer, *args, **kwargs):
        output = layer(*args, **kwargs)
        if layer.name in target_set:
            output = new_block(layer)(output)
        return output

    return _rebuilt(model, call_function)


def remove_blocks(model, names):
    """Returns a new functional model with the named layers taken out.

    Each removed layer must map a tensor to one of the same shape (a block:
    SR, CC, SE, ...); whatever consumed its output now consumes its input.
    Every other layer keeps its weights. This is the SR paper's ablation
    (the trained network evaluated with its block removed at inference).

    Args:
        model: a functional `keras.Model`.
        names: the names of the layers to remove (a list, or one name).

    Returns:
        A new `keras.Model` without those layers.

    Example:

    >>> from keras_memblocks.models import remove_blocks, vgg_like
    >>> model = vgg_like("mnist", width=2, blocks={"block": "cc", "after": "conv"})
    >>> plain = remove_blocks(model, ["stage1_conv1_cc", "stage2_conv1_cc"])
    >>> [layer.name for layer in plain.layers if layer.name.endswith("_cc")]
    []
    """
    names = [names] if isinstance(names, str) else list(names)
    layers_by_name = {layer.name: layer for layer in model.layers}
    _check_names(model, names, layers_by_name)
    for name in names:
        layer = layers_by_name[name]
        source, result = layer.input, layer.output
        if (
            isinstance(source, (list, tuple))
            or isinstance(result, (list, tuple))
            or (tuple(source.shape) != tuple(result.shape))
        ):
            raise ValueError(
                f"Layer {name!r} does not map one tensor to one of the same shape; only "
                "such blocks can be removed."
            )
    removed = set(names)

    def call_function(layer, *args, **kwargs):
        if layer.name in removed:
            return args[0]
        return layer(*args, **kwargs)

    return _rebuilt(model, call_function)


def _check_names(model, names, layers_by_name):
    for name in names:
        if name not in layers_by_name:
            close = difflib.get_close_matches(name, layers_by_name, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(f"Model {model.name!r} has no layer named {name!r}.{hint}")


def _rebuilt(model, call_function):
    """`model` re-traced through `call_function`, with its layers' weights."""
    # New inputs with the original names, so that every name survives.
    input_layers = {
        id(layer.output): layer
        for layer in model.layers
        if isinstance(layer, keras.layers.InputLayer)
    }
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=input_layers[id(t)].name),
        model.input,
    )
    clone = keras.models.clone_model(model, input_tensors=inputs, call_function=call_function)
    copy_weights_by_name(model, clone)
    return clone
