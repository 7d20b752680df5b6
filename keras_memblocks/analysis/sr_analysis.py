"""The SR paper's analyses of a trained Squeeze-and-Remember block.

- `memory_usage`: per class, mean and sd of the P softmax memory weights
  (the paper's Fig. 2 and 5);
- `memory_activity`: average channel activity of each memory M_i (Fig. 4);
- `activation_change`: per class, mean absolute difference of the channel
  activations before and after the block (Fig. 3);
- `removal_ablation`: accuracy with the block removed at inference (the
  paper: -0.4 % on ImageNet).

Each returns its numbers; each `plot_...` companion draws them with
matplotlib and returns the figure.
"""

import dataclasses

import keras
import matplotlib.pyplot as plt
import numpy as np

from keras_memblocks.analysis import feature_taps
from keras_memblocks.layers import SqueezeAndRemember2D
from keras_memblocks.models import remove_blocks


@dataclasses.dataclass
class MemoryUsage:
    """Softmax memory weights of one SR block, by class.

    Attributes:
        layer_name: the SR block read.
        classes: (K,) the class ids present, sorted.
        mean: (K, P) mean weight of each memory over the class's examples.
        std: (K, P) their standard deviation.
        weights: (N, P) every example's weights.
        labels: (N,) the examples' classes.

    Returned by `memory_usage` (see its example); drawn by
    `plot_memory_usage`.

    Examples:
        The memory each class recalls most:

        >>> import numpy as np
        >>> from keras_memblocks.analysis import MemoryUsage
        >>> mean = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
        >>> classes = np.array([0, 1])
        >>> usage = MemoryUsage("sr", classes, mean, np.zeros((2, 3)), mean, classes)
        >>> usage.mean.argmax(axis=1) + 1
        array([1, 3])
    """

    layer_name: str
    classes: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    labels: np.ndarray


@dataclasses.dataclass
class ActivationChange:
    """Per class and channel, mean |SR(x) - x| (the paper's Fig. 3).

    Attributes:
        layer_name: the SR block read.
        classes: (K,) class ids.
        mean_abs_difference: (K, C), averaged over the class's examples and
            all pixels.

    Returned by `activation_change`; drawn by `plot_activation_change`.

    Examples:
        The channel the block changes most, per class:

        >>> import numpy as np
        >>> from keras_memblocks.analysis import ActivationChange
        >>> change = ActivationChange("sr", np.array([0, 1]), np.array([[0.1, 0.5], [0.3, 0.2]]))
        >>> change.mean_abs_difference.argmax(axis=1)
        array([1, 0])
    """

    layer_name: str
    classes: np.ndarray
    mean_abs_difference: np.ndarray


@dataclasses.dataclass
class RemovalAblation:
    """Accuracy of a model with and without its SR block(s) at inference.

    Attributes:
        removed: names of the layers taken out.
        accuracy_with: top-1 accuracy of the model as trained.
        accuracy_without: top-1 accuracy with the blocks removed.
        difference: `accuracy_without - accuracy_with` (negative: the block
            helps).

    Returned by `removal_ablation`; drawn by `plot_removal_ablation`.

    Examples:
        >>> from keras_memblocks.analysis import RemovalAblation
        >>> ablation = RemovalAblation(["module3_sr"], 0.80, 0.75, -0.05)
        >>> f"{ablation.difference:+.1%}"
        '-5.0%'
    """

    removed: list
    accuracy_with: float
    accuracy_without: float
    difference: float


def _sr_block(model, layer_name):
    layers = feature_taps.find_blocks(model, SqueezeAndRemember2D, layer_name)
    if len(layers) > 1:
        raise ValueError(
            f"Model {model.name!r} has {len(layers)} SR blocks "
            f"({[layer.name for layer in layers]}); pass `layer_name`."
        )
    return layers[0]


def _block_output(layer):
    output = layer.output
    return output[0] if isinstance(output, (list, tuple)) else output


def memory_usage(model, images, labels, layer_name=None, batch_size=64):
    """Per-class mean and sd of an SR block's memory weights (Fig. 2 / 5).

    Args:
        model: a functional `keras.Model` holding the SR block.
        images: the inputs, e.g. the test set.
        labels: (N,) integer classes.
        layer_name: which SR block; needed only when there are several.
        batch_size: examples per inference batch.

    Returns:
        `MemoryUsage`.

    Examples:
        >>> import keras, numpy as np
        >>> from keras_memblocks.layers import SRBlock
        >>> from keras_memblocks.analysis import memory_usage
        >>> inputs = keras.Input((8, 8, 4))
        >>> model = keras.Model(inputs, SRBlock(num_memory_blocks=3, name="sr")(inputs))
        >>> usage = memory_usage(model, np.ones((6, 8, 8, 4)), np.array([0, 0, 0, 1, 1, 1]))
        >>> usage.mean.shape, usage.std.shape
        ((2, 3), (2, 3))
    """
    labels = feature_taps.check_labels(images, labels)
    layer = _sr_block(model, layer_name)
    (block_inputs,) = feature_taps.tap(model, [layer.input], images, batch_size)
    weights = np.concatenate(
        [
            keras.ops.convert_to_numpy(
                layer.compute_memory_weights(block_inputs[start : start + batch_size])
            )
            for start in range(0, len(block_inputs), batch_size)
        ]
    )
    classes = np.unique(labels)
    mean = np.stack([weights[labels == c].mean(axis=0) for c in classes])
    std = np.stack([weights[labels == c].std(axis=0) for c in classes])
    return MemoryUsage(layer.name, classes, mean, std, weights, labels)


def memory_activity(model, layer_name=None):
    """Average channel activity of each memory M_i (Fig. 4).

    Activity is the mean absolute value of a memory's channel over its
    pixels.

    Returns:
        (P, C) array.

    Examples:
        >>> import keras
        >>> from keras_memblocks.layers import SRBlock
        >>> from keras_memblocks.analysis import memory_activity
        >>> inputs = keras.Input((8, 8, 4))
        >>> model = keras.Model(inputs, SRBlock(num_memory_blocks=3)(inputs))
        >>> memory_activity(model).shape  # memories start at zero
        (3, 4)
    """
    layer = _sr_block(model, layer_name)
    memory = np.abs(keras.ops.convert_to_numpy(layer.memory))  # (P, H, W, C) or (P, C, H, W)
    spatial_axes = (1, 2) if layer.data_format == "channels_last" else (2, 3)
    return memory.mean(axis=spatial_axes)


def activation_change(model, images, labels, layer_name=None, batch_size=64):
    """Per class, mean |output - input| of an SR block per channel (Fig. 3).

    Args:
        model: a functional `keras.Model` holding the SR block.
        images: the inputs, e.g. the test set.
        labels: (N,) integer classes.
        layer_name: which SR block; needed only when there are several.
        batch_size: examples per inference batch.

    Returns:
        `ActivationChange`.

    Examples:
        >>> import keras, numpy as np
        >>> from keras_memblocks.layers import SRBlock
        >>> from keras_memblocks.analysis import activation_change
        >>> inputs = keras.Input((8, 8, 4))
        >>> model = keras.Model(inputs, SRBlock(num_memory_blocks=3)(inputs))
        >>> change = activation_change(model, np.ones((4, 8, 8, 4)), np.array([0, 0, 1, 1]))
        >>> change.mean_abs_difference  # zero memories: the block adds nothing yet
        array([[0., 0., 0., 0.],
               [0., 0., 0., 0.]], dtype=float32)
    """
    labels = feature_taps.check_labels(images, labels)
    layer = _sr_block(model, layer_name)
    before, after = feature_taps.tap(model, [layer.input, _block_output(layer)], images, batch_size)
    spatial_axes = (1, 2) if layer.data_format == "channels_last" else (2, 3)
    change = np.abs(after.astype("float32") - before.astype("float32")).mean(axis=spatial_axes)
    classes = np.unique(labels)
    mean = np.stack([change[labels == c].mean(axis=0) for c in classes])
    return ActivationChange(layer.name, classes, mean)


def _accuracy(model, images, labels, batch_size):
    predictions = np.asarray(
        model.predict(np.asarray(images, "float32"), batch_size=batch_size, verbose=0)
    )
    if predictions.ndim != 2:
        raise ValueError(
            f"removal_ablation needs a classifier with (N, classes) outputs; the model "
            f"outputs {predictions.shape}."
        )
    return float(np.mean(predictions.argmax(axis=-1) == labels))


def removal_ablation(model, images, labels, layer_names=None, batch_size=64):
    """Top-1 accuracy with and without the SR block(s) at inference.

    The paper's ablation: the trained network evaluated with its SR block
    taken out (every other weight unchanged; `remove_blocks`).

    Args:
        model: a functional classifier with one or more SR blocks.
        images: the evaluation images.
        labels: their integer labels.
        layer_names: the blocks to remove; default every SR block.
        batch_size: examples per inference batch.

    Returns:
        `RemovalAblation`.

    Examples:
        >>> import keras, numpy as np
        >>> from keras_memblocks.layers import SRBlock
        >>> from keras_memblocks.analysis import removal_ablation
        >>> inputs = keras.Input((8, 8, 4))
        >>> x = SRBlock(num_memory_blocks=2, name="sr")(inputs)
        >>> outputs = keras.layers.GlobalAveragePooling2D()(x)
        >>> model = keras.Model(inputs, outputs)
        >>> images = np.random.default_rng(0).random((10, 8, 8, 4))
        >>> labels = model.predict(images, verbose=0).argmax(-1)
        >>> removal_ablation(model, images, labels).difference  # zero memories: no change
        0.0
    """
    labels = feature_taps.check_labels(images, labels)
    if layer_names is None:
        layer_names = [
            layer.name for layer in feature_taps.find_blocks(model, SqueezeAndRemember2D)
        ]
    else:
        layer_names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
        for name in layer_names:
            feature_taps.find_blocks(model, SqueezeAndRemember2D, name)
    with_block = _accuracy(model, images, labels, batch_size)
    without_block = _accuracy(remove_blocks(model, layer_names), images, labels, batch_size)
    return RemovalAblation(list(layer_names), with_block, without_block, without_block - with_block)


def plot_memory_usage(usage, class_names=None, columns=5):
    """Bar charts of `MemoryUsage`: one panel per class, mean +- sd per memory.

    Returns:
        A `matplotlib.figure.Figure`.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.analysis import MemoryUsage, plot_memory_usage
        >>> usage = MemoryUsage("sr", np.arange(2), np.full((2, 3), 1 / 3), np.zeros((2, 3)),
        ...                     np.full((4, 3), 1 / 3), np.array([0, 0, 1, 1]))
        >>> len(plot_memory_usage(usage).axes)
        2
    """
    num_classes, num_memories = usage.mean.shape
    columns = min(columns, num_classes)
    rows = -(-num_classes // columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(2.4 * columns, 2.0 * rows + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    names = feature_taps.class_labels(usage.classes, class_names)
    memories = np.arange(1, num_memories + 1)
    for index, axis in enumerate(axes.flat):
        if index >= num_classes:
            axis.remove()
            continue
        axis.bar(
            memories,
            usage.mean[index],
            yerr=usage.std[index],
            capsize=2,
            color="tab:blue",
            alpha=0.8,
        )
        axis.set_title(f"class {names[index]}", fontsize=9)
        axis.set_xticks(memories)
    figure.supxlabel("memory block")
    figure.supylabel("softmax weight (mean ± sd)")
    figure.suptitle(f"Memory usage per class ({usage.layer_name})")
    figure.tight_layout()
    return figure


def plot_memory_activity(activity, layer_name="SR block"):
    """Heat map of `memory_activity`: memories x channels.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.analysis import plot_memory_activity
        >>> plot_memory_activity(np.ones((3, 8))).axes[0].get_ylabel()
        'memory block'
    """
    figure, axis = plt.subplots(figsize=(8, 0.35 * len(activity) + 1.6))
    image = axis.imshow(activity, aspect="auto", cmap="viridis", interpolation="nearest")
    axis.set_yticks(range(len(activity)), [str(i + 1) for i in range(len(activity))])
    axis.set_xlabel("channel")
    axis.set_ylabel("memory block")
    axis.set_title(f"Average channel activity of each memory ({layer_name})")
    figure.colorbar(image, ax=axis, label="mean |M_i|")
    figure.tight_layout()
    return figure


def plot_activation_change(change, class_names=None):
    """Heat map of `ActivationChange`: classes x channels.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.analysis import ActivationChange, plot_activation_change
        >>> change = ActivationChange("sr", np.arange(3), np.ones((3, 8)))
        >>> plot_activation_change(change).axes[0].get_ylabel()
        'class'
    """
    values = change.mean_abs_difference
    figure, axis = plt.subplots(figsize=(8, 0.3 * len(values) + 1.6))
    image = axis.imshow(values, aspect="auto", cmap="magma", interpolation="nearest")
    axis.set_yticks(range(len(values)), feature_taps.class_labels(change.classes, class_names))
    axis.set_xlabel("channel")
    axis.set_ylabel("class")
    axis.set_title(f"Mean |after - before| per channel ({change.layer_name})")
    figure.colorbar(image, ax=axis, label="mean absolute difference")
    figure.tight_layout()
    return figure


def plot_removal_ablation(ablation):
    """Two bars: accuracy with and without the removed block(s).

    Examples:
        >>> from keras_memblocks.analysis import RemovalAblation, plot_removal_ablation
        >>> figure = plot_removal_ablation(RemovalAblation(["sr"], 0.9, 0.85, -0.05))
        >>> [float(bar.get_height()) for bar in figure.axes[0].patches]
        [0.9, 0.85]
    """
    figure, axis = plt.subplots(figsize=(4, 3.2))
    bars = axis.bar(
        ["with SR", "SR removed"],
        [ablation.accuracy_with, ablation.accuracy_without],
        color=["tab:blue", "tab:gray"],
    )
    axis.bar_label(bars, fmt="%.3f")
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("top-1 accuracy")
    axis.set_title(f"Removal ablation ({ablation.difference:+.3f})")
    figure.tight_layout()
    return figure
