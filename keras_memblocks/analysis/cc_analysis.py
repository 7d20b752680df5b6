"""The CC paper's analyses of trained Contextual Convolution blocks.

- `cc_coefficients`: every CC block's per-example coefficients;
- `tilt_and_magnitude`: per layer, tilt |a_w - b_w|, |a_h - b_h| and
  magnitude |(a_w + b_w)/2 - 1|, |(a_h + b_h)/2 - 1| of the bilinear maps
  (the paper's Fig. 5a-d: early layers small tilt, large magnitude; deep
  layers the reverse);
- `class_difference_matrix`: for each pair of classes, how many of the
  4 x (total channels) coefficient distributions differ by a Mann-Whitney U
  test at p < 0.01; the diagonal compares two random halves of one class
  (Fig. 5e);
- `plot_excitation_maps`: what a block does to one image.

Each returns its numbers; each `plot_...` companion returns a matplotlib
figure.
"""

import dataclasses

import keras
import matplotlib.pyplot as plt
import numpy as np
from keras import ops
from matplotlib import colors
from scipy.stats import mannwhitneyu

from keras_memblocks.analysis import feature_taps
from keras_memblocks.layers import ContextualConvBlock2D
from keras_memblocks.layers.excitation_maps import factors


@dataclasses.dataclass
class CCCoefficients:
    """Coefficients of every CC block of a model on a set of images.

    Attributes:
        layer_names: the CC blocks, in model order.
        coefficients: one (N, C, K) array per block (K = 4, or 1 for the
            scalar variants), in the EMP's coefficient order.
        emps: each block's EMP name.
        labels: (N,) integer classes, or `None`.

    Returned by `cc_coefficients`; read by `tilt_and_magnitude` and
    `class_difference_matrix`.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.analysis import CCCoefficients
        >>> values = np.ones((5, 8, 4))  # 5 images, 8 channels, {a_w, b_w, a_h, b_h}
        >>> result = CCCoefficients(["block"], [values], ["bilinear"])
        >>> float(result.coefficients[0][:, :, 0].mean())  # mean a_w
        1.0
    """

    layer_names: list
    coefficients: list
    emps: list
    labels: np.ndarray = None


@dataclasses.dataclass
class TiltAndMagnitude:
    """Fig. 5a-d: one 1-D array per layer and measure (examples x channels).

    Attributes:
        layer_names: the CC blocks.
        tilt_w: |a_w - b_w|.
        tilt_h: |a_h - b_h|.
        magnitude_w: |(a_w + b_w)/2 - 1|.
        magnitude_h: |(a_h + b_h)/2 - 1|.

    Returned by `tilt_and_magnitude`; drawn by `plot_tilt_and_magnitude`.

    Examples:
        The median per layer:

        >>> import numpy as np
        >>> from keras_memblocks.analysis import TiltAndMagnitude
        >>> result = TiltAndMagnitude(["a", "b"], [np.array([0.0, 0.2]), np.array([0.4, 0.6])],
        ...                           [], [], [])
        >>> [float(np.median(values)) for values in result.tilt_w]
        [0.1, 0.5]
    """

    layer_names: list
    tilt_w: list
    tilt_h: list
    magnitude_w: list
    magnitude_h: list


@dataclasses.dataclass
class ClassDifferences:
    """Fig. 5e: for classes i, j, the number of coefficient distributions
    (of `num_distributions` = 4 x total channels) that differ, p < `alpha`.

    Attributes:
        classes: (K,) class ids.
        counts: (K, K) symmetric integer matrix; the diagonal compares two
            random halves of one class (the false-positive level).
        num_distributions: the number tested per pair.
        alpha: the significance level.

    Returned by `class_difference_matrix`; drawn by
    `plot_class_difference_matrix`.

    Examples:
        As a share of the distributions tested:

        >>> import numpy as np
        >>> from keras_memblocks.analysis import ClassDifferences
        >>> result = ClassDifferences(np.array([0, 1]), np.array([[0, 30], [30, 1]]), 120, 0.01)
        >>> result.counts / result.num_distributions
        array([[0.        , 0.25      ],
               [0.25      , 0.00833333]])
    """

    classes: np.ndarray
    counts: np.ndarray
    num_distributions: int
    alpha: float


def cc_coefficients(model, images, labels=None, layer_names=None, batch_size=64):
    """Every CC block's coefficients on `images`.

    Args:
        model: a functional `keras.Model` with CC blocks.
        images: the inputs.
        labels: optional (N,) integer classes (needed by
            `class_difference_matrix`).
        layer_names: the blocks to read; default all, in model order.
        batch_size: examples per inference batch.

    Returns:
        `CCCoefficients`.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.models import vgg_like
        >>> from keras_memblocks.analysis import cc_coefficients
        >>> model = vgg_like("mnist", width=2, blocks={"block": "cc", "after": "conv"})
        >>> result = cc_coefficients(model, np.zeros((3, 28, 28, 1)))
        >>> result.layer_names, [c.shape for c in result.coefficients]
        (['stage1_conv1_cc', 'stage2_conv1_cc'], [(3, 2, 4), (3, 8, 4)])
    """
    if labels is not None:
        labels = feature_taps.check_labels(images, labels)
    if layer_names is None:
        layers = feature_taps.find_blocks(model, ContextualConvBlock2D)
    else:
        names = [layer_names] if isinstance(layer_names, str) else layer_names
        layers = [feature_taps.find_blocks(model, ContextualConvBlock2D, name)[0] for name in names]
    block_inputs = feature_taps.tap(model, [layer.input for layer in layers], images, batch_size)
    coefficients = [
        np.concatenate(
            [
                keras.ops.convert_to_numpy(
                    layer.compute_coefficients(inputs[start : start + batch_size])
                )
                for start in range(0, len(inputs), batch_size)
            ]
        )
        for layer, inputs in zip(layers, block_inputs)
    ]
    return CCCoefficients(
        [layer.name for layer in layers], coefficients, [layer.emp for layer in layers], labels
    )


def tilt_and_magnitude(coefficients):
    """Tilt and magnitude of the bilinear maps, per layer (Fig. 5a-d).

    Args:
        coefficients: `CCCoefficients` of bilinear, 4-coefficient blocks
            (`{a_w, b_w, a_h, b_h}` per channel).

    Returns:
        `TiltAndMagnitude`; each array holds one value per example and
        channel.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.analysis import CCCoefficients, tilt_and_magnitude
        >>> flat = np.ones((2, 3, 4))  # a_w = b_w = a_h = b_h = 1: a flat map
        >>> result = tilt_and_magnitude(CCCoefficients(["cc"], [flat], ["bilinear"]))
        >>> result.tilt_w[0], result.magnitude_h[0]
        (array([0., 0., 0., 0., 0., 0.]), array([0., 0., 0., 0., 0., 0.]))
    """
    measures = {"tilt_w": [], "tilt_h": [], "magnitude_w": [], "magnitude_h": []}
    for name, values, emp in zip(
        coefficients.layer_names, coefficients.coefficients, coefficients.emps
    ):
        if emp != "bilinear" or values.shape[-1] != 4:
            raise ValueError(
                f"Tilt and magnitude are defined for bilinear maps with 4 coefficients; "
                f"block {name!r} has emp={emp!r} and {values.shape[-1]} coefficient(s)."
            )
        a_w, b_w, a_h, b_h = (values[..., k].reshape(-1).astype("float64") for k in range(4))
        measures["tilt_w"].append(np.abs(a_w - b_w))
        measures["tilt_h"].append(np.abs(a_h - b_h))
        measures["magnitude_w"].append(np.abs((a_w + b_w) / 2 - 1))
        measures["magnitude_h"].append(np.abs((a_h + b_h) / 2 - 1))
    return TiltAndMagnitude(list(coefficients.layer_names), **measures)


def _count_differences(first, second, alpha):
    """How many columns of two (n, D) samples differ by a two-sided
    Mann-Whitney U test at p < alpha."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p_values = mannwhitneyu(first, second, axis=0, method="asymptotic").pvalue
    # A column constant in both samples has no variance to test (NaN): no difference.
    return int(np.sum(np.nan_to_num(p_values, nan=1.0) < alpha))


def class_difference_matrix(coefficients, alpha=0.01, seed=0):
    """Class x class counts of differing coefficient distributions (Fig. 5e).

    Every coefficient of every channel of every block is one distribution
    over a class's examples; for each pair of classes, the number of them a
    two-sided Mann-Whitney U test finds different at p < `alpha`. The
    diagonal splits one class's examples at random into two halves.

    Args:
        coefficients: `CCCoefficients` with labels.
        alpha: significance level (the paper: 0.01).
        seed: seed of the diagonal's random halves.

    Returns:
        `ClassDifferences`.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.analysis import CCCoefficients, class_difference_matrix
        >>> values = np.zeros((40, 2, 4))
        >>> values[20:, 0, 0] = 1 + np.arange(20)  # class 1 differs in one coefficient
        >>> labels = np.repeat([0, 1], 20)
        >>> result = class_difference_matrix(CCCoefficients(["cc"], [values], ["bilinear"], labels))
        >>> result.counts, result.num_distributions
        (array([[0, 1],
               [1, 0]]), 8)
    """
    if coefficients.labels is None:
        raise ValueError("class_difference_matrix needs labels: pass them to cc_coefficients.")
    labels = coefficients.labels
    features = np.concatenate(
        [values.reshape(len(values), -1).astype("float64") for values in coefficients.coefficients],
        axis=1,
    )
    classes = np.unique(labels)
    samples = [features[labels == c] for c in classes]
    for c, sample in zip(classes, samples):
        if len(sample) < 4:
            raise ValueError(
                f"Class {c} has {len(sample)} examples; at least 4 are needed "
                "(two halves of 2 for the diagonal)."
            )
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    for i, first in enumerate(samples):
        order = rng.permutation(len(first))
        half = len(first) // 2
        counts[i, i] = _count_differences(first[order[:half]], first[order[half:]], alpha)
        for j in range(i + 1, len(classes)):
            counts[i, j] = counts[j, i] = _count_differences(first, samples[j], alpha)
    return ClassDifferences(classes, counts, features.shape[1], alpha)


def plot_tilt_and_magnitude(result):
    """Box plots per layer of tilt and magnitude, width and height (Fig. 5a-d).

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.analysis import CCCoefficients, tilt_and_magnitude
        >>> from keras_memblocks.analysis import plot_tilt_and_magnitude
        >>> values = np.random.default_rng(0).uniform(0.5, 1.5, (5, 3, 4))
        >>> coefficients = CCCoefficients(["a", "b"], [values, values], ["bilinear"] * 2)
        >>> measures = tilt_and_magnitude(coefficients)
        >>> len(plot_tilt_and_magnitude(measures).axes)
        4
    """
    panels = [
        ("tilt_w", "tilt |a_w - b_w|"),
        ("tilt_h", "tilt |a_h - b_h|"),
        ("magnitude_w", "magnitude |(a_w + b_w)/2 - 1|"),
        ("magnitude_h", "magnitude |(a_h + b_h)/2 - 1|"),
    ]
    figure, axes = plt.subplots(
        2, 2, figsize=(max(7, 1.1 * len(result.layer_names) + 4), 6.5), sharex=True
    )
    positions = np.arange(1, len(result.layer_names) + 1)
    for axis, (field, title) in zip(axes.flat, panels):
        axis.boxplot(getattr(result, field), positions=positions, showfliers=False)
        axis.set_title(title, fontsize=10)
        axis.set_xticks(positions, [str(p) for p in positions])
    for axis in axes[1]:
        axis.set_xlabel("CC block (input to output)")
    figure.suptitle("Coefficients of the bilinear excitation maps per layer")
    figure.tight_layout()
    return figure


def plot_class_difference_matrix(result, class_names=None):
    """The class x class matrix of `ClassDifferences`, counts written in.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.analysis import ClassDifferences, plot_class_difference_matrix
        >>> result = ClassDifferences(np.arange(2), np.array([[0, 3], [3, 1]]), 8, 0.01)
        >>> len(plot_class_difference_matrix(result).axes[0].texts)
        4
    """
    counts = result.counts
    names = feature_taps.class_labels(result.classes, class_names)
    size = max(4.0, 0.45 * len(names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(counts, cmap="Blues", vmin=0)
    for i in range(len(names)):
        for j in range(len(names)):
            dark = counts[i, j] > 0.6 * max(counts.max(), 1)
            axis.text(
                j,
                i,
                str(counts[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    axis.set_xticks(range(len(names)), names)
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("class")
    axis.set_ylabel("class")
    axis.set_title(
        f"Differing coefficient distributions (of {result.num_distributions}, "
        f"Mann-Whitney p < {result.alpha})",
        fontsize=9,
    )
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    return figure


def plot_excitation_maps(model, image, layer_name=None, channels=4):
    """One image through one CC block: the channel before, its excitation
    map, and the channel after, for a few channels.

    Args:
        model: a functional model with CC blocks.
        image: one input image (H, W, C).
        layer_name: the block; default the first CC block.
        channels: a list of channel indices, or a number: that many channels
            whose maps vary most over the image.

    Returns:
        A `matplotlib.figure.Figure` (3 rows x `channels` panels).

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.models import vgg_like
        >>> from keras_memblocks.analysis import plot_excitation_maps
        >>> model = vgg_like("mnist", width=2, blocks={"block": "cc", "after": "conv"})
        >>> len(plot_excitation_maps(model, np.zeros((28, 28, 1)), channels=2).axes)  # + colour bar
        7
    """
    layer = feature_taps.find_blocks(model, ContextualConvBlock2D, layer_name)[0]
    (block_input,) = feature_taps.tap(model, [layer.input], np.asarray(image)[None])
    excitation = keras.ops.convert_to_numpy(layer.compute_excitation_map(block_input))[0]
    before = block_input[0]
    if layer.data_format == "channels_first":
        excitation, before = np.moveaxis(excitation, 0, -1), np.moveaxis(before, 0, -1)
    if isinstance(channels, int):
        spread = excitation.max(axis=(0, 1)) - excitation.min(axis=(0, 1))
        channels = sorted(np.argsort(-spread, kind="stable")[:channels].tolist())
    # Two factors in [0.5, 1.5]: the map lies in [0.25, 2.25], 1 is pass-through.
    norm = colors.TwoSlopeNorm(vmin=0.25, vcenter=1.0, vmax=2.25)
    figure, axes = plt.subplots(3, len(channels), figsize=(2.2 * len(channels), 6.4), squeeze=False)
    rows = [
        ("input channel", before, "gray"),
        ("excitation map S", excitation, "coolwarm"),
        ("output = S * input", before * excitation, "gray"),
    ]
    for row, (title, values, cmap) in enumerate(rows):
        for column, c in enumerate(channels):
            axis = axes[row, column]
            options = dict(norm=norm) if cmap == "coolwarm" else {}
            shown = axis.imshow(values[..., c], cmap=cmap, **options)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(title, fontsize=9)
            if row == 0:
                axis.set_title(f"channel {c}", fontsize=9)
        if cmap == "coolwarm":
            figure.colorbar(shown, ax=list(axes[row]), fraction=0.02)
    figure.suptitle(f"{layer.name} ({layer.variant}, {layer.emp} EMP)")
    return figure


def plot_excitation_map_producers(height=32, width=32):
    """The three EMPs with a few coefficient sets each (no model needed).

    Examples:
        >>> from keras_memblocks.analysis import plot_excitation_map_producers
        >>> len(plot_excitation_map_producers().axes)
        9
    """
    examples = {
        "bilinear": [(1.0, 1.0, 1.0, 1.0), (0.5, 1.5, 1.0, 1.0), (1.5, 0.5, 0.5, 1.5)],
        "gaussian": [(0.5, 1.0, 0.5, 1.0), (0.3, 0.15, 0.7, 0.15), (0.8, 0.1, 0.5, 0.4)],
        "sine": [(0.0, 0.0, 0.0, 0.0), (6.3, 0.0, 0.0, 1.57), (12.6, 0.0, 12.6, 0.0)],
    }
    figure, axes = plt.subplots(3, 3, figsize=(7.5, 7.5))
    for row, (emp, coefficient_sets) in enumerate(examples.items()):
        for column, values in enumerate(coefficient_sets):
            coefficients = ops.convert_to_tensor(np.asarray(values, "float32")[:, None])
            rows, columns = factors(emp, coefficients, height, width)
            excitation = np.asarray(rows)[:, None, 0] * np.asarray(columns)[None, :, 0]
            axis = axes[row, column]
            axis.imshow(excitation, cmap="coolwarm", vmin=0.25, vmax=2.25)
            axis.set_title(f"{emp} {tuple(round(v, 2) for v in values)}", fontsize=7)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle("Excitation map producers (4 coefficients each)")
    figure.tight_layout()
    return figure
