"""Training recipes: the papers' settings as named, overridable configs."""

import dataclasses
import math
from dataclasses import dataclass
from dataclasses import field

from keras_memblocks import registry
from keras_memblocks.training import specs
from keras_memblocks.utils.config_files import load_config_file  # noqa: F401 (training.load_config_file)
from keras_memblocks.utils.files import shorten
from keras_memblocks.utils.strategies import STRATEGIES

SCHEDULES = ("step", "poly", "constant")
OPTIMIZERS = ("sgd", "adam")


@dataclass
class TrainingConfig:
    """Everything one training run needs. Every field can be overridden.

    Start from a recipe (`get_recipe`) and `replace` what differs; the
    `memblocks train` flags and `--set FIELD=VALUE` do the same.

    Examples:
        >>> from keras_memblocks.training import get_recipe
        >>> config = get_recipe("sr-cifar100").replace(epochs=2, batch_size=64)
        >>> config.epochs, config.learning_rate, config.model_args["blocks"]["num_memory_blocks"]
        (2, 0.1, 10)
    """

    dataset: str = "cifar100"
    model: str = "cifar_resnet"
    model_args: dict = field(default_factory=lambda: {"depth": 18})
    epochs: int = 200
    batch_size: int = 128
    optimizer: str = "sgd"  # SGD with coupled weight decay (the papers'), or AdamW
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: tuple = (60, 120, 160)  # epochs (step schedule)
    gamma: float = 0.2  # factor at each milestone
    poly_power: float = 0.9
    min_learning_rate: float = 1e-4
    validation_fraction: float = 0.1
    reverse_split: bool = False  # the CC paper's swapped train / test
    image_size: int = 32  # digits only (registry.DATASETS' `options`)
    crop_size: tuple = (512, 1024)  # cityscapes only
    auxiliary_loss_weight: float = 0.4  # segmentation with auxiliary_head
    mixed_precision: bool = False
    # Keras' own default: XLA where it pays (a GPU, the JAX backend), graph
    # mode on a TensorFlow CPU. True / False force it.
    jit_compile: object = "auto"
    strategy: str = "none"
    data_dir: str = None
    tensorboard: bool = False
    max_steps_per_epoch: int = None  # cap steps (quick runs)
    max_eval_steps: int = None  # cap validation and test batches (quick runs)

    def validate(self):
        """Raises `ValueError` naming the field, the value and what is allowed.

        Every field is checked for its type and range (a YAML `"0.1"` is a
        string, not a learning rate), before any data is read or any model
        built.
        """
        for name, (accepts, allowed) in FIELD_RULES.items():
            value = getattr(self, name)
            if not accepts(value):
                kind = f" ({type(value).__name__})" if value is not None else ""
                raise ValueError(f"`{name}` must be {allowed}. Received: {shorten(value)}{kind}")
        specs.task_spec(self)  # a known model and dataset, of the same task
        self._check_dataset_options()
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(
                f"`milestones` must increase, each epoch once. Received: {shorten(self.milestones)}"
            )
        return self

    def unread_fields(self):
        """The fields that only another dataset reads (`registry.DATASET_OPTIONS`):
        they must keep their defaults, and do not tell two runs apart."""
        entry = registry.DATASETS.get(self.dataset)
        reads = entry.options if entry is not None else registry.DATASET_OPTIONS
        return tuple(name for name in registry.DATASET_OPTIONS if name not in reads)

    def _check_dataset_options(self):
        defaults = self.defaults()
        for name in self.unread_fields():
            value = getattr(self, name)
            if _comparable(value) != _comparable(defaults[name]):
                readers = [n for n, e in registry.DATASETS.items() if name in e.options]
                raise ValueError(
                    f"`{name}` applies to the {' and '.join(readers)} dataset only; dataset "
                    f"{self.dataset!r} does not read it. Received: {shorten(value)}; leave it "
                    "out of the config."
                )

    def replace(self, **overrides):
        """A copy with `overrides`; unknown field names raise `ValueError`."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(
                f"Unknown recipe field(s) {unknown}. Valid fields: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **overrides)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def defaults(cls):
        """Every field's default, as `to_dict` writes it: what a run directory stored
        before a field existed is compared as if it had held the default."""
        return cls().to_dict()


def _comparable(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(low):
    return lambda value: _is_int(value) and value >= low


def _number_in(low, high=math.inf, low_open=False, high_open=False):
    def accepts(value):
        if not _is_number(value):
            return False
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return above and below

    return accepts


def _choice(choices):
    return lambda value: isinstance(value, str) and value in choices


def _is_bool(value):
    return isinstance(value, bool)


# field -> (accepts(value), what is allowed): what `TrainingConfig.validate` checks.
FIELD_RULES = {
    "dataset": (lambda value: isinstance(value, str), "a dataset name (a string)"),
    "model": (lambda value: isinstance(value, str), "a model name (a string)"),
    "model_args": (lambda value: isinstance(value, dict), "a dict of builder arguments"),
    "epochs": (_int_at_least(1), "an integer >= 1"),
    "batch_size": (_int_at_least(1), "an integer >= 1"),
    "optimizer": (_choice(OPTIMIZERS), f"one of {', '.join(OPTIMIZERS)}"),
    "learning_rate": (_number_in(0, low_open=True), "a number > 0"),
    "momentum": (_number_in(0, 1, high_open=True), "a number in [0, 1)"),
    "weight_decay": (_number_in(0), "a number >= 0"),
    "schedule": (_choice(SCHEDULES), f"one of {', '.join(SCHEDULES)}"),
    "milestones": (
        lambda value: isinstance(value, (list, tuple)) and all(_int_at_least(1)(m) for m in value),
        "a list of epochs (integers >= 1)",
    ),
    "gamma": (_number_in(0, low_open=True), "a number > 0"),
    "poly_power": (_number_in(0, low_open=True), "a number > 0"),
    "min_learning_rate": (_number_in(0), "a number >= 0"),
    "validation_fraction": (_number_in(0, 1, high_open=True), "a number in [0, 1)"),
    "reverse_split": (_is_bool, "true or false"),
    "image_size": (_int_at_least(8), "an integer >= 8"),
    "crop_size": (
        lambda value: (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(_int_at_least(1)(side) for side in value)
        ),
        "[height, width], two integers >= 1",
    ),
    "auxiliary_loss_weight": (_number_in(0), "a number >= 0"),
    "mixed_precision": (_is_bool, "true or false"),
    "jit_compile": (lambda value: _is_bool(value) or value == "auto", "true, false or 'auto'"),
    "strategy": (_choice(STRATEGIES), f"one of {', '.join(STRATEGIES)}"),
    "data_dir": (lambda value: value is None or isinstance(value, str), "a folder path or null"),
    "tensorboard": (_is_bool, "true or false"),
    "max_steps_per_epoch": (
        lambda value: value is None or _int_at_least(1)(value),
        "an integer >= 1, or null for whole epochs",
    ),
    "max_eval_steps": (
        lambda value: value is None or _int_at_least(1)(value),
        "an integer >= 1, or null for the whole validation and test splits",
    ),
}


def sr_after(module, memories, units=8):
    """The SR paper's placement: one SR block after `module`, (M, P) = (module, memories)."""
    return {"block": "sr", "after": module, "num_memory_blocks": memories, "hidden_units": units}


def cc_after_every_conv(variant="reduced", **args):
    """The CC paper's placement: one CC block after every conv of the VGG-like net."""
    return {"block": "cc", "after": "conv", "variant": variant, **args}


# SR paper: CIFAR-10, x0.1 at epochs 90 and 136 (180 epochs: not published).
SR_CIFAR10 = TrainingConfig(
    dataset="cifar10",
    model="cifar_resnet",
    model_args={
        "depth": 18,
        "num_classes": 10,
        "blocks": sr_after(3, 10),
        "regularizer": "dropout2d",
    },
    epochs=180,
    learning_rate=0.1,
    weight_decay=1e-4,
    milestones=(90, 136),
    gamma=0.1,
)

# SR paper: CIFAR-100, x0.2 at epochs 60, 120, 160 (200 epochs).
SR_CIFAR100 = TrainingConfig(
    dataset="cifar100",
    model="cifar_resnet",
    model_args={
        "depth": 18,
        "num_classes": 100,
        "blocks": sr_after(3, 10),
        "regularizer": "dropout",
    },
    epochs=200,
    learning_rate=0.1,
    weight_decay=5e-4,
    milestones=(60, 120, 160),
    gamma=0.2,
)

# SR paper: ImageNet ResNet50, 450 epochs, x0.1 every 75.
SR_IMAGENET = TrainingConfig(
    dataset="imagenet2012",
    model="resnet50",
    model_args={"num_classes": 1000, "blocks": sr_after(3, 10, 16), "regularizer": "dropout2d"},
    epochs=450,
    learning_rate=0.1,
    weight_decay=1e-4,
    milestones=(75, 150, 225, 300, 375),
    gamma=0.1,
    validation_fraction=0.0,
)

# SR paper: Cityscapes DeepLabv3, poly(0.9) to 1e-4, aux head 0.4. The
# paper gives 80k iterations; at batch 8 on 2,975 images that is ~215 epochs.
SR_CITYSCAPES = TrainingConfig(
    dataset="cityscapes",
    model="deeplabv3",
    model_args={
        "num_classes": 19,
        "input_shape": [512, 1024, 3],
        "blocks": sr_after(2, 2),
        "auxiliary_head": True,
        "dropout": 0.1,
    },
    epochs=215,
    batch_size=8,
    learning_rate=0.01,
    weight_decay=5e-4,
    schedule="poly",
    validation_fraction=0.0,
)

# CC paper: hyper-parameters not published. Our choice: the paper's
# CIFAR-100 net at width 32 with reduced blocks, SGD 0.05, x0.1 at 50 and 75.
CC_CIFAR100 = TrainingConfig(
    dataset="cifar100",
    model="vgg_like",
    model_args={"dataset": "cifar100", "width": 32, "blocks": cc_after_every_conv()},
    epochs=100,
    learning_rate=0.05,
    weight_decay=5e-4,
    milestones=(50, 75),
    gamma=0.1,
)

# Fashion-MNIST (not in the papers; a harder drop-in for MNIST): the CC
# paper's MNIST net, AdamW as on the digits (hyper-parameters unpublished).
CC_FASHION_MNIST = TrainingConfig(
    dataset="fashion_mnist",
    model="vgg_like",
    model_args={"dataset": "mnist", "width": 8, "blocks": cc_after_every_conv()},
    epochs=15,
    batch_size=128,
    optimizer="adam",
    learning_rate=1e-3,
    weight_decay=1e-4,
    milestones=(10,),
    gamma=0.1,
    validation_fraction=0.1,
)

# Fashion-MNIST with the SR paper's CIFAR ResNet-18 at a quarter of its
# width (8 filters in the stem, to fit 2 CPU cores), dropout2d and SR (3, 10),
# the paper's optimizer with fewer epochs.
SR_FASHION_MNIST = TrainingConfig(
    dataset="fashion_mnist",
    model="cifar_resnet",
    model_args={
        "depth": 18,
        "width": 8,
        "num_classes": 10,
        "blocks": sr_after(3, 10),
        "regularizer": "dropout2d",
    },
    epochs=8,
    batch_size=128,
    learning_rate=0.1,
    weight_decay=5e-4,
    milestones=(5, 7),
    gamma=0.1,
    validation_fraction=0.1,
)

# The embedded dataset: minutes on a CPU (the demo's setting). AdamW:
# with SGD (lr 0.01-0.05, momentum 0.9) the VGG-like net with 8 CC
# blocks and no normalisation trains slowly and erratically here
# (24 % after 15 epochs in one run, against 96 % without blocks).
DIGITS = TrainingConfig(
    dataset="digits",
    model="vgg_like",
    model_args={"dataset": "cifar10", "width": 8, "blocks": cc_after_every_conv()},
    epochs=15,
    batch_size=64,
    optimizer="adam",
    learning_rate=1e-3,
    weight_decay=1e-4,
    milestones=(10,),
    gamma=0.1,
    validation_fraction=0.1,
    image_size=32,
)

RECIPES = {name: registry.load(entry.config) for name, entry in registry.RECIPES.items()}
"""Name -> `TrainingConfig` of the papers' recipes (`memblocks train --recipe NAME`)."""


def get_recipe(name):
    """The `TrainingConfig` of a named recipe (the papers' settings).

    Examples:
        >>> from keras_memblocks.training import RECIPES, get_recipe
        >>> sorted(RECIPES)[:4]
        ['cc-cifar100', 'cc-fashion-mnist', 'digits', 'sr-cifar10']
        >>> get_recipe("digits").dataset
        'digits'
    """
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}. Valid recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
