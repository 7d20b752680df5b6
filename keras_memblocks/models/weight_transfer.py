"""Weights moved between models that share layer names."""


def copy_weights_by_name(source, target, exclude=()):
    """Copies the weights of every layer of `source` that `target` has too.

    Returns the names copied. Shapes must agree (a `ValueError` names the
    layer otherwise); layers only in `target`, or named in `exclude`, keep
    their values.

    Examples:
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
        copy_weights(layer, target_layers[layer.name])
        copied.append(layer.name)
    return copied


def copy_weights(source, target):
    """Copies the weights of the layer `source` into the layer `target`
    (built alike); a `ValueError` names the weight whose shape differs."""
    if len(source.weights) != len(target.weights):
        raise ValueError(
            f"Layer {source.name!r} holds {len(source.weights)} weights in the source and "
            f"{len(target.weights)} in the target."
        )
    for a, b in zip(source.weights, target.weights):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(
                f"Layer {source.name!r}: weight {a.name} has shape {tuple(a.shape)} "
                f"in the source and {tuple(b.shape)} in the target."
            )
    target.set_weights(source.get_weights())
