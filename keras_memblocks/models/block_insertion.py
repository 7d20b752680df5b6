"""Blocks inserted into functional models we did not write."""

import difflib
import sys

import keras

from keras_memblocks.layers import get_block
from keras_memblocks.models.weight_transfer import copy_weights
from keras_memblocks.utils.compat import is_functional


def insert_blocks(model, block, after, **block_kwargs):
    """Returns a new functional model with a block after the chosen layers.

    The graph is rebuilt with `keras.models.clone_model`, whose
    `call_function` hook applies a fresh block to the output of every chosen
    layer; then every original layer's weights are copied into its clone, so
    the new model computes what the old one did wherever the blocks are the
    identity (SR and the input-dependent CC variants start as the identity).
    Branches and skip connections are kept: everything that consumed a
    chosen layer's output now consumes the block's.

    Nested functional models (a backbone inside a task, a model used as a
    layer) are reached too: name their layers by path,
    `"backbone/stack2_block1_out"`, or let the predicate pick them (it sees
    every layer of every nested functional model). Each nested model on the
    way is rebuilt the same way and keeps its name, so the outer model keeps
    its structure, inputs, outputs and weights.

    keras-hub models come back as keras-hub models: a backbone as a
    `BackboneWithBlocks` (a `keras_hub.models.Backbone` that keeps the
    pyramid outputs, data format and image shape), a task (e.g.
    `ImageClassifier`) as the same class with the same preprocessor and
    head weights around it (see `keras_memblocks.models.hub_models`).

    Args:
        model: a functional `keras.Model` (e.g. `keras.applications`, a
            keras-hub backbone or task).
        block: a block name `get_block` resolves (`"sr"`, `"cc"`, `"se"`,
            `"cbam"`), a layer class, or a callable `f(layer) -> new layer`.
        after: a list of layer names or paths, or a predicate
            `f(layer) -> bool`.
        **block_kwargs: arguments of every block (with a name or a class).

    Returns:
        A new `keras.Model`; each inserted block is named
        `"{layer.name}_{block}"`, beside the layer it follows.

    Examples:
        >>> import keras
        >>> from keras_memblocks.models import insert_blocks
        >>> base = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
        >>> model = insert_blocks(base, "cc", after=["block_6_project_BN"])
        >>> model.get_layer("block_6_project_BN_cc").output.shape
        (None, 6, 6, 64)

    A backbone nested in a classifier:

    >>> inputs = keras.Input((32, 32, 3))
    >>> backbone = keras.Model(inputs, keras.layers.Conv2D(8, 3, name="conv")(inputs),
    ...                        name="backbone")
    >>> features = backbone(inputs)
    >>> head = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(features))
    >>> classifier = keras.Model(inputs, head)
    >>> with_sr = insert_blocks(classifier, "sr", after=["backbone/conv"])
    >>> with_sr.get_layer("backbone").get_layer("conv_sr").output.shape
    (None, 30, 30, 8)
    """
    _check_rewirable(model)
    paths = _layer_paths(model)
    if callable(after) and not isinstance(after, (list, tuple, str)):
        targets = [path for path, layer in paths.items() if after(layer)]
        if not targets:
            raise ValueError(
                "The `after` predicate selected no layer of the model (nested functional "
                "models included)."
            )
    else:
        targets = [after] if isinstance(after, str) else list(after)
        _check_names(model, targets, paths)
    for path in targets:
        output = paths[path].output
        if isinstance(output, (list, tuple)) or len(output.shape) != 4:
            shape = [o.shape for o in output] if isinstance(output, (list, tuple)) else output.shape
            raise ValueError(
                f"Layer {path!r} outputs {shape}, not a 4-D feature map: a block cannot follow it."
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

    def rewire(model, names):
        def call_function(layer, *args, **kwargs):
            output = layer(*args, **kwargs)
            if layer.name in names:
                output = new_block(layer)(output)
            return output

        return call_function

    return _rebuilt_along(model, targets, rewire)


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

    Examples:
        >>> from keras_memblocks.models import remove_blocks, vgg_like
        >>> model = vgg_like("mnist", width=2, blocks={"block": "cc", "after": "conv"})
        >>> plain = remove_blocks(model, ["stage1_conv1_cc", "stage2_conv1_cc"])
        >>> [layer.name for layer in plain.layers if layer.name.endswith("_cc")]
        []
    """
    names = [names] if isinstance(names, str) else list(names)
    _check_rewirable(model)
    paths = _layer_paths(model)
    _check_names(model, names, paths)
    for name in names:
        layer = paths[name]
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

    def rewire(model, removed):
        def call_function(layer, *args, **kwargs):
            if layer.name in removed:
                return args[0]
            return layer(*args, **kwargs)

        return call_function

    return _rebuilt_along(model, names, rewire)


def _check_rewirable(model):
    if not is_functional(model):
        raise ValueError(
            f"Model {model.name!r} ({type(model).__name__}) is not a functional graph, so its "
            "layers cannot be rewired. Insert blocks into its functional parts (e.g. its "
            "backbone) and rebuild it around them."
        )


def _layer_paths(model, prefix=""):
    """Every layer by path: `"name"`, and `"inner/name"` inside a nested
    functional model (depth first, in graph order)."""
    paths = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        paths[prefix + layer.name] = layer
        if is_functional(layer):
            paths.update(_layer_paths(layer, f"{prefix}{layer.name}/"))
    return paths


def _check_names(model, names, paths):
    for name in names:
        if name not in paths:
            close = difflib.get_close_matches(name, paths, n=3)
            hint = f" Did you mean {close}?" if close else ""
            head = name.split("/")[0]
            if "/" in name and head in paths and not is_functional(paths[head]):
                hint = (
                    f" {head!r} is a {type(paths[head]).__name__}, not a functional model: "
                    "its inside cannot be rewired."
                )
            raise ValueError(f"Model {model.name!r} has no layer named {name!r}.{hint}")


def _rebuilt_along(model, paths, rewire):
    """`model` rebuilt with `rewire(model, names)` applied to the layers
    `paths` name, nested models first (each keeps its name). keras-hub
    models come back as keras-hub models (see `hub_models`)."""
    hub = _hub_models()
    if hub is not None and hub.is_hub_task(model):
        inner = hub.check_paths_in_backbone(model, paths)
        return hub.task_around(model, _rebuilt_along(model.backbone, inner, rewire))
    here = {path for path in paths if "/" not in path}
    inside = {}
    for path in paths:
        if "/" in path:
            head, rest = path.split("/", 1)
            inside.setdefault(head, []).append(rest)
    replaced = {
        head: _rebuilt_along(model.get_layer(head), rest, rewire) for head, rest in inside.items()
    }
    call_function = rewire(model, here)
    produced = {}  # layer name -> the tensor that now stands for its output

    def call_with_replacements(layer, *args, **kwargs):
        if layer.name in replaced:
            output = replaced[layer.name](*args, **kwargs)
        else:
            output = call_function(layer, *args, **kwargs)
        produced[layer.name] = output
        return output

    rebuilt = _rebuilt(model, call_with_replacements, rebuilt_inside=set(replaced))
    if hub is not None and hub.is_hub_backbone(model):
        return hub.backbone_with_blocks(model, rebuilt, produced)
    return rebuilt


def _hub_models():
    """The keras-hub support, once keras-hub is imported (a model cannot be
    a keras-hub one before)."""
    if "keras_hub" not in sys.modules:
        return None
    from keras_memblocks.models import hub_models

    return hub_models


def _rebuilt(model, call_function, rebuilt_inside=()):
    """`model` re-traced through `call_function`, with its layers' weights
    (the nested models in `rebuilt_inside` come with theirs)."""
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
    clones = []  # (original, clone): weights move by identity, not by name

    def clone_layer(layer):
        clone = layer.__class__.from_config(layer.get_config())
        if clone.name != layer.name:
            # Some layers rename themselves in from_config (keras-hub's
            # MobileNet DepthwiseConvBlock appends "_0"); keep the name paths use.
            clone.name = layer.name
        clones.append((layer, clone))
        return clone

    clone = keras.models.clone_model(
        model, input_tensors=inputs, clone_function=clone_layer, call_function=call_function
    )
    for layer, copy in clones:
        # Ops (keras.ops in the graph) hold no weights; a clone left
        # unbuilt is not in the new graph (a removed block).
        if getattr(copy, "built", False) and layer.name not in rebuilt_inside:
            copy_weights(layer, copy)
    return clone
