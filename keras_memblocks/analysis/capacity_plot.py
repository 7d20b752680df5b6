"""The plot of the CC paper's Fig. 4: accuracy versus number of weights.

The nets are trained by `keras_memblocks.training.accuracy_versus_weights`
(the `[train]` extra); this module only draws its `CapacityCurves`.
"""

import matplotlib.pyplot as plt


def plot_accuracy_versus_weights(curves):
    """Test accuracy against the number of weights (log scale), one line per
    variant, mean +- sd over seeds.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.analysis import plot_accuracy_versus_weights
        >>> from keras_memblocks.training import CapacityCurves
        >>> curves = CapacityCurves(np.array(["standard", "standard"]), np.array([1, 2]),
        ...                         np.array([0, 0]), np.array([1000, 3000]), np.array([0.5, 0.7]),
        ...                         "cifar10")
        >>> len(plot_accuracy_versus_weights(curves).axes[0].lines) >= 1
        True
    """
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
