"""Accuracy versus number of weights over widths, per CC variant (CC Fig. 4).

The CC paper trains its VGG-like nets at first-conv widths 1 ... 48 with
each variant and plots test accuracy against the number of weights:
reduced > scalar > input-independent > standard on CIFAR, the gap growing
with width.
"""

import dataclasses

import keras
import numpy as np

from keras_memblocks.layers import VARIANT_NAMES
from keras_memblocks.models import vgg_like

STANDARD = "standard"  # the paper's name for the net without blocks


@dataclasses.dataclass
class CapacityCurves:
    """One row per trained net.

    Attributes:
        variants, widths, seeds: (R,) what each net was.
        parameters: (R,) its number of weights.
        accuracy: (R,) its test accuracy.
        dataset: the VGG-like layout used.
        swapped: whether train and test sets were swapped (the paper's
            small-training-set runs).

    Returned by `accuracy_versus_weights`; drawn by
    `plot_accuracy_versus_weights`.

    Example:

    >>> import numpy as np
    >>> from keras_memblocks.analysis import CapacityCurves
    >>> curves = CapacityCurves(np.array(["reduced"] * 2), np.array([4, 4]), np.array([0, 1]),
    ...                         np.array([5000, 5000]), np.array([0.6, 0.8]), "cifar10")
    >>> widths, parameters, mean, sd = curves.summary()["reduced"]
    >>> widths, parameters, mean.round(3), sd.round(3)
    (array([4]), array([5000]), array([0.7]), array([0.1]))
    """

    variants: np.ndarray
    widths: np.ndarray
    seeds: np.ndarray
    parameters: np.ndarray
    accuracy: np.ndarray
    dataset: str
    swapped: bool = False

    def summary(self):
        """{variant: (widths, parameters, mean accuracy, sd)} over seeds."""
        table = {}
        for variant in dict.fromkeys(self.variants.tolist()):
            rows = self.variants == variant
            widths = np.unique(self.widths[rows])
            parameters = np.array([self.parameters[rows & (self.widths == w)][0] for w in widths])
            runs = [self.accuracy[rows & (self.widths == w)] for w in widths]
            table[variant] = (widths, parameters, np.array([r.mean() for r in runs]),
                              np.array([r.std() for r in runs]))
        return table


def accuracy_versus_weights(train_data, test_data, dataset="cifar10", widths=(1, 2, 4, 8),
                            variants=(STANDARD, "scalar", "input_independent", "reduced"),
                            epochs=5, batch_size=64, seeds=(0,), learning_rate=1e-3,
                            swap_train_test=False, verbose=True):
    """Trains the VGG-like net at each width with each variant; test accuracy.

    Args:
        train_data, test_data: `(images, integer labels)` NumPy pairs; the
            image shape and class count come from them.
        dataset: the VGG-like layout (`"mnist"`, `"cifar10"`, `"cifar100"`).
        widths: first-conv widths (the paper: 1 ... 48).
        variants: `"standard"` (no block) and CC variant names.
        epochs, batch_size, learning_rate: AdamW training of every net.
        seeds: one run per seed and configuration.
        swap_train_test: train on the test set and test on the training set
            (the paper's second row of plots).
        verbose: a progress bar over the runs.

    Returns:
        `CapacityCurves`.

    Example:

    >>> from keras_memblocks.data import load_digits
    >>> from keras_memblocks.analysis import accuracy_versus_weights
    >>> (x, y), (xt, yt) = load_digits(16)
    >>> curves = accuracy_versus_weights((x[:64], y[:64]), (xt[:32], yt[:32]), widths=(1,),
    ...                                  variants=("standard", "reduced"), epochs=1, verbose=False)
    >>> curves.parameters.tolist()
    [2862, 4302]
    """
    unknown = [v for v in variants if v != STANDARD and v not in VARIANT_NAMES]
    if unknown:
        raise ValueError(f"Unknown variants {unknown}. Valid: {(STANDARD, *VARIANT_NAMES)}")
    (x_train, y_train), (x_test, y_test) = train_data, test_data
    if swap_train_test:
        (x_train, y_train), (x_test, y_test) = (x_test, y_test), (x_train, y_train)
    num_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    runs = [(v, w, s) for v in variants for w in widths for s in seeds]
    progress = (keras.utils.Progbar(len(runs), unit_name="net", stateful_metrics=["accuracy"])
                if verbose else None)
    rows = []
    for index, (variant, width, seed) in enumerate(runs):
        keras.utils.set_random_seed(seed)
        block = {} if variant == STANDARD else dict(block="cc", variant=variant)
        model = vgg_like(dataset, width, num_classes=num_classes, input_shape=x_train.shape[1:],
                         **block)
        model.compile(optimizer=keras.optimizers.AdamW(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
        accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)[1]
        rows.append((variant, width, seed, model.count_params(), accuracy))
        if progress is not None:
            progress.update(index + 1, [("accuracy", accuracy)])
    variants_, widths_, seeds_, parameters, accuracy = map(np.array, zip(*rows))
    return CapacityCurves(variants_, widths_, seeds_, parameters, accuracy.astype("float64"),
                          dataset, swap_train_test)


def plot_accuracy_versus_weights(curves):
    """Test accuracy against the number of weights (log scale), one line per
    variant, mean +- sd over seeds.

    Example:

    >>> import numpy as np
    >>> from keras_memblocks.analysis import CapacityCurves, plot_accuracy_versus_weights
    >>> curves = CapacityCurves(np.array(["standard", "standard"]), np.array([1, 2]),
    ...                         np.array([0, 0]), np.array([1000, 3000]), np.array([0.5, 0.7]),
    ...                         "cifar10")
    >>> len(plot_accuracy_versus_weights(curves).axes[0].lines) >= 1
    True
    """
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for variant, (widths, parameters, mean, std) in curves.summary().items():
        axis.errorbar(parameters, mean, yerr=std, marker="o", capsize=3, label=variant)
    axis.set_xscale("log")
    axis.set_xlabel("number of weights")
    axis.set_ylabel("test accuracy")
    swapped = ", train/test swapped" if curves.swapped else ""
    axis.set_title(f"Accuracy vs weights (VGG-like, {curves.dataset} layout{swapped})")
    axis.legend()
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    return figure
