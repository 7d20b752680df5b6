"""The papers' analyses of trained SR and CC blocks, with plots.

Every function returns its numbers (NumPy arrays or a small dataclass);
every `plot_...` companion draws them with matplotlib and returns the
figure. The `[analysis]` extra: SciPy (the Mann-Whitney tests) and
Matplotlib. Nothing here trains a net: the analyses take trained models.
"""

from keras_memblocks.utils import extras

extras.require("analysis", "keras_memblocks.analysis")

from keras_memblocks.analysis.capacity_plot import plot_accuracy_versus_weights
from keras_memblocks.analysis.cc_analysis import CCCoefficients
from keras_memblocks.analysis.cc_analysis import ClassDifferences
from keras_memblocks.analysis.cc_analysis import TiltAndMagnitude
from keras_memblocks.analysis.cc_analysis import cc_coefficients
from keras_memblocks.analysis.cc_analysis import class_difference_matrix
from keras_memblocks.analysis.cc_analysis import plot_class_difference_matrix
from keras_memblocks.analysis.cc_analysis import plot_excitation_map_producers
from keras_memblocks.analysis.cc_analysis import plot_excitation_maps
from keras_memblocks.analysis.cc_analysis import plot_tilt_and_magnitude
from keras_memblocks.analysis.cc_analysis import tilt_and_magnitude
from keras_memblocks.analysis.sr_analysis import ActivationChange
from keras_memblocks.analysis.sr_analysis import MemoryUsage
from keras_memblocks.analysis.sr_analysis import RemovalAblation
from keras_memblocks.analysis.sr_analysis import activation_change
from keras_memblocks.analysis.sr_analysis import memory_activity
from keras_memblocks.analysis.sr_analysis import memory_usage
from keras_memblocks.analysis.sr_analysis import plot_activation_change
from keras_memblocks.analysis.sr_analysis import plot_memory_activity
from keras_memblocks.analysis.sr_analysis import plot_memory_usage
from keras_memblocks.analysis.sr_analysis import plot_removal_ablation
from keras_memblocks.analysis.sr_analysis import removal_ablation

__all__ = [
    "ActivationChange",
    "CCCoefficients",
    "ClassDifferences",
    "MemoryUsage",
    "RemovalAblation",
    "TiltAndMagnitude",
    "activation_change",
    "cc_coefficients",
    "class_difference_matrix",
    "memory_activity",
    "memory_usage",
    "plot_accuracy_versus_weights",
    "plot_activation_change",
    "plot_class_difference_matrix",
    "plot_excitation_map_producers",
    "plot_excitation_maps",
    "plot_memory_activity",
    "plot_memory_usage",
    "plot_removal_ablation",
    "plot_tilt_and_magnitude",
    "removal_ablation",
    "tilt_and_magnitude",
]

# Moved in 0.2.0: they train nets, so they live with the trainer.
_MOVED_TO_TRAINING = ("CapacityCurves", "accuracy_versus_weights")


def __getattr__(name):
    if name in _MOVED_TO_TRAINING:
        raise AttributeError(
            f"keras_memblocks.analysis.{name} moved to keras_memblocks.training.{name} in 0.2.0 "
            f"(it trains nets): from keras_memblocks.training import {name}"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
