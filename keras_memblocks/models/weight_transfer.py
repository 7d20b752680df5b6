"""Weights moved between models that share layer names."""


def copy_weights_by_name(source, target, exclude=()):
    """Copies the weights of every layer of `source` that `target` has too.

    Returns the names copied. Shapes must agree (a `ValueError` names the
    layer otherwise); layers only in `target`, or named in `exclude`, keep
    their values.

    Example:

    >>> from keras_memblocks.models import copy_weights_by_name, vgg_like
    >>> plain = vgg_like("mnist", width=2)
    >>> # The same names, plus the blocks:
    >>> with_cc = vgg_like("mnist", width=2, blocks={"block": "cc", "after": "conv"})
    >>> copy_weights_by_name(plain, with_cc)[:2]
    ['stage1_conv1', 'stage2_conv1']
    """
    target_layers = {layer.name: layer for layer in target.layers}
    copied = []
    for layer in source.layers:
        if layer.name not in target_layers or layer.name in exclude or not layer.weights:
            continue
        destination = target_layers[layer.name]
        for a, b in zip(layer.weights, destination.weights):
            if tuple(a.shape) != tuple(b.shape):
                raise ValueError(
                    f"Layer {layer.name!r}: weight {a.name} has shape {tuple(a.shape)} "
                    f"in the source and {tuple(b.shape)} in the target."
                )
        destination.set_weights(layer.get_weights())
        copied.append(layer.name)
    return copied
