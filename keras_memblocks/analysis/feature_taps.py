"""Reading what a block of a trained functional model sees and produces."""

import keras
import numpy as np


def find_blocks(model, layer_type, name=None):
    """The layers of `model` of `layer_type`, or the one called `name`.

    Raises a `ValueError` naming the layers there are when none matches.
    """
    if name is not None:
        try:
            layer = model.get_layer(name)
        except ValueError:
            layer = None
        if not isinstance(layer, layer_type):
            found = [layer.name for layer in model.layers if isinstance(layer, layer_type)]
            raise ValueError(
                f"Model {model.name!r} has no {layer_type.__name__} named {name!r}. "
                f"Its {layer_type.__name__} layers: {found or 'none'}."
            )
        return [layer]
    layers = [layer for layer in model.layers if isinstance(layer, layer_type)]
    if not layers:
        raise ValueError(
            f"Model {model.name!r} has no {layer_type.__name__} layer (nested models are "
            "not searched; pass the sub-model that holds the block)."
        )
    return layers


def tap(model, tensors, images, batch_size=64):
    """Evaluates intermediate `tensors` of `model` on `images` (inference).

    Returns a list of NumPy arrays, one per tensor, batch first.
    """
    taps = keras.Model(model.inputs, list(tensors))
    outputs = taps.predict(np.asarray(images, dtype="float32"), batch_size=batch_size, verbose=0)
    return [np.asarray(output) for output in (outputs if isinstance(outputs, list) else [outputs])]


def class_labels(classes, class_names=None):
    """Tick labels for class ids: `class_names[c]` where given, else `c`."""
    if class_names is None:
        return [str(c) for c in classes]
    return [str(class_names[c]) for c in classes]


def check_labels(images, labels):
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise ValueError(
            f"Got {len(images)} images and {len(labels)} labels; one integer label per image "
            "is needed."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Labels must be integer class ids. Received dtype {labels.dtype}.")
    return labels
