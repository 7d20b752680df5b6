"""Accuracy versus number of weights over widths, per CC variant (CC Fig. 4).

The CC paper trains its VGG-like nets at first-conv widths 1 ... 48 with
each variant and plots test accuracy against the number of weights:
reduced > scalar > input-independent > standard on CIFAR, the gap growing
with width. The nets are trained here, by the trainer;
`keras_memblocks.analysis.plot_accuracy_versus_weights` draws the curves.
"""

import dataclasses
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_memblocks.layers import VARIANT_NAMES
from keras_memblocks.training.recipes import cc_after_every_conv
from keras_memblocks.training.recipes import get_recipe
from keras_memblocks.training.seeds import train_seeds

STANDARD = "standard"  # the paper's name for the net without blocks
# The nets of the paper's Fig. 4: without blocks, then three CC variants.
CAPACITY_VARIANTS = (STANDARD, "scalar", "input_independent", "reduced")


@dataclasses.dataclass
class CapacityCurves:
    """One row per trained net.

    Attributes:
        variants: (R,) each net's CC variant.
        widths: (R,) each net's width.
        seeds: (R,) each net's seed.
        parameters: (R,) its number of weights.
        accuracy: (R,) its test accuracy.
        dataset: the VGG-like layout used.
        swapped: whether train and test sets were swapped (the paper's
            small-training-set runs).

    Returned by `accuracy_versus_weights`; drawn by
    `keras_memblocks.analysis.plot_accuracy_versus_weights`.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.training import CapacityCurves
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
            table[variant] = (
                widths,
                parameters,
                np.array([r.mean() for r in runs]),
                np.array([r.std() for r in runs]),
            )
        return table


def capacity_config(dataset, width, variant, swapped=False, layout=None, recipe=None):
    """One point of the CC paper's Fig. 4: the VGG-like net at `width`.

    Args:
        dataset: the recipe's dataset.
        width: the first conv's width.
        variant: a CC variant after every conv, or `"standard"` (no block).
        swapped: train on the test split, test on the training split.
        layout: the VGG-like layout (`"mnist"`, `"cifar10"`, `"cifar100"`);
            defaults to `dataset` (`"cifar10"` for the digits, whose images
            the recipe gives at 32x32).
        recipe: whose training settings; default `"digits"` on the digits,
            else `"cc-cifar100"`.

    Examples:
        >>> from keras_memblocks.training.capacity_curves import capacity_config
        >>> config = capacity_config("digits", 4, "scalar")
        >>> config.model_args["dataset"], config.model_args["blocks"]["variant"], config.optimizer
        ('cifar10', 'scalar', 'adam')
    """
    digits = dataset == "digits"
    layout = layout or ("cifar10" if digits else dataset)
    recipe = recipe or ("digits" if digits else "cc-cifar100")
    args = {"dataset": layout, "width": width}
    if variant != STANDARD:
        args["blocks"] = cc_after_every_conv(variant)
    return get_recipe(recipe).replace(dataset=dataset, model_args=args, reverse_split=swapped)


def accuracy_versus_weights(
    dataset="digits",
    widths=(1, 2, 4, 8),
    variants=CAPACITY_VARIANTS,
    seeds=(0,),
    swap_train_test=False,
    layout=None,
    recipe=None,
    output_dir=None,
    verbose=True,
    **overrides,
):
    """Trains the VGG-like net at each width with each variant; test accuracy.

    Every net is one row of `memblocks reproduce cc-fig4` (the same
    `capacity_config`), trained by the same `train_seeds`: a recipe's
    optimizer, schedule, validation split and best checkpoint, tested on the
    dataset's test split. Runs that already finished in `output_dir` are
    read, not trained again.

    Args:
        dataset: a recipe dataset (`"digits"`, `"mnist"`, `"cifar10"`, ...).
        widths: first-conv widths (the paper: 1 ... 48).
        variants: `"standard"` (no block) and CC variant names.
        seeds: one run per seed and configuration.
        swap_train_test: train on the test split, test on the training split
            (the paper's second row of plots).
        layout: the VGG-like layout; default as in `capacity_config`.
        recipe: the recipe whose training settings are used; default as
            in `capacity_config`.
        output_dir: where the runs go (`<variant>_w<width>/seed_<s>`);
            default: a temporary directory, removed afterwards.
        verbose: a progress bar over the runs.
        **overrides: recipe fields, e.g. `epochs=5`, `data_dir=...`.

    Returns:
        `CapacityCurves`.

    Examples:
        >>> from keras_memblocks.training import accuracy_versus_weights
        >>> curves = accuracy_versus_weights(widths=(1,), variants=("standard", "reduced"),
        ...                                  epochs=1, image_size=16, verbose=False)
        >>> curves.parameters.tolist()
        [2862, 4302]
    """
    unknown = [v for v in variants if v != STANDARD and v not in VARIANT_NAMES]
    if unknown:
        raise ValueError(f"Unknown variants {unknown}. Valid: {(STANDARD, *VARIANT_NAMES)}")
    points = [(v, w) for v in variants for w in widths]
    progress = (
        keras.utils.Progbar(
            len(points) * len(seeds), unit_name="net", stateful_metrics=["accuracy"]
        )
        if verbose
        else None
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(output_dir or scratch)
        for variant, width in points:
            config = capacity_config(
                dataset, width, variant, swap_train_test, layout, recipe
            ).replace(**overrides)
            layout = config.model_args["dataset"]  # the layout capacity_config chose
            summary = train_seeds(config, seeds, root / f"{variant}_w{width}", verbose=0)
            for seed, results in zip(seeds, summary["runs"]):
                accuracy = results["test"]["accuracy"]
                rows.append((variant, width, seed, results["parameters"], accuracy))
                if progress is not None:
                    progress.add(1, [("accuracy", accuracy)])
    variants_, widths_, seeds_, parameters, accuracy = map(np.array, zip(*rows))
    return CapacityCurves(
        variants_, widths_, seeds_, parameters, accuracy.astype("float64"), layout, swap_train_test
    )
