"""What the trainer knows about tasks, models and datasets, resolved.

The names, help lines and the references to each builder and loader are
`keras_memblocks.registry`'s entries (which the command line and the docs
read without importing Keras); here they become `ModelSpec`s and
`DatasetSpec`s holding the functions themselves, beside each task's compile
defaults (`TaskSpec`). `keras_memblocks.training.plan.resolve` looks a
config's names up here once per run.

Examples:
    >>> from keras_memblocks.training import specs
    >>> sorted(specs.MODELS)
    ['cifar_resnet', 'cifar_vgg', 'deeplabv3', 'fcn', 'resnet50', 'vgg_like']
    >>> specs.model_spec("fcn").task, specs.dataset_spec("cityscapes").task
    ('segmentation', 'segmentation')
"""

import dataclasses
import warnings
from typing import Callable

import keras
import tensorflow as tf

from keras_memblocks import registry
from keras_memblocks.data import digits
from keras_memblocks.data import epochs
from keras_memblocks.data import fashion_mnist
from keras_memblocks.data import tfds_datasets
from keras_memblocks.data.preprocessing import IGNORE_LABEL
from keras_memblocks.metrics import mean_iou

# === Tasks ===


def _classification_compile_args(model, config):
    return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


def _segmentation_compile_args(model, config):
    loss = keras.losses.SparseCategoricalCrossentropy(ignore_class=IGNORE_LABEL)
    if not isinstance(model.output, dict):
        return {"loss": loss, "metrics": [mean_iou(model.output.shape[-1], IGNORE_LABEL)]}
    # With an auxiliary head: both outputs trained, the main one measured.
    classes = model.output["predictions"].shape[-1]
    return {
        "loss": {"predictions": loss, "aux": loss},
        "loss_weights": {"predictions": 1.0, "aux": config.auxiliary_loss_weight},
        "metrics": {"predictions": [mean_iou(classes, IGNORE_LABEL)]},
    }


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A task's compile defaults, as keras-hub tasks carry theirs.

    Attributes:
        name: the task's name.
        compile_args: `f(model, config) -> dict` of `loss`, `metrics` (and
            `loss_weights`) for `model.compile`.
        monitor: the validation metric the best checkpoint keeps.
        mode: `"max"` or `"min"`, which of its values is best.
        headline_metrics: keys of `evaluate`'s results, the first present
            is the number a run reports (in percent, as the papers do).
    """

    name: str
    compile_args: Callable
    monitor: str
    mode: str
    headline_metrics: tuple


TASKS = {
    "classification": TaskSpec(
        "classification",
        _classification_compile_args,
        monitor="val_accuracy",
        mode="max",
        headline_metrics=("accuracy",),
    ),
    "segmentation": TaskSpec(
        "segmentation",
        _segmentation_compile_args,
        monitor="val_loss",
        mode="min",
        headline_metrics=("predictions_mean_iou", "mean_iou"),
    ),
}

# === Models ===


def _three_channels(model_args):
    return 3


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model the trainer can build.

    Attributes:
        name: the recipe's `model`.
        builder: `f(**model_args)`; it receives `num_classes` and
            `input_shape` from the dataset unless `model_args` sets them.
        task: a `TASKS` name.
        input_channels: `f(model_args) -> int`, the channels the model's
            layout takes, for a dataset that can produce any number (the
            embedded digits).
    """

    name: str
    builder: Callable
    task: str
    input_channels: Callable = _three_channels


def vgg_like_channels(model_args):
    """The VGG-like net's input channels: 1 in its MNIST layout, else 3."""
    return 1 if model_args.get("dataset") == "mnist" else 3


def _with_known_task(spec):
    if spec.task not in TASKS:
        raise ValueError(f"Unknown task {spec.task!r}. Valid tasks: {', '.join(TASKS)}")
    return spec


MODELS = {}
"""Name -> `ModelSpec` of every model the trainer knows: `keras_memblocks.registry.MODELS`,
resolved, and any `register_model` added."""


def register_model(spec):
    """Adds a `ModelSpec` in this process: `build_model` and recipes then know it.

    A model the package ships is an entry of `keras_memblocks.registry.MODELS`
    instead, which the command line and the docs also read.

    Examples:
        >>> import keras
        >>> from keras_memblocks.training import specs
        >>> def tiny(num_classes, input_shape):
        ...     inputs = keras.Input(input_shape)
        ...     x = keras.layers.GlobalAveragePooling2D()(inputs)
        ...     return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
        >>> specs.register_model(specs.ModelSpec("tiny", tiny, "classification"))
        >>> from keras_memblocks.training import build_model, get_recipe
        >>> build_model(get_recipe("digits").replace(model="tiny", model_args={})).output.shape
        (None, 10)
        >>> _ = specs.MODELS.pop("tiny")
    """
    MODELS[spec.name] = _with_known_task(spec)


for _entry in registry.MODELS.values():
    register_model(
        ModelSpec(
            _entry.name,
            registry.load(_entry.builder),
            _entry.task,
            registry.load(_entry.input_channels) if _entry.input_channels else _three_channels,
        )
    )

# === Datasets ===


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset the trainer can read.

    Attributes:
        name: the recipe's `dataset`.
        task: a `TASKS` name.
        num_classes: the classifier's width.
        image_shape: `f(config, channels) -> (H, W, C)` of the model's
            input; `channels` is what the model's layout takes.
        load: `f(config, seed, channels) -> (train, validation or None,
            test)`: `train` is a `keras_memblocks.data.epochs.TrainingSource`
            (the examples in a fixed order and their augmentation; the
            trainer shuffles and seeds each epoch from it, so a resumed run
            sees what an uninterrupted one would), validation and test are
            batched `tf.data.Dataset`s of `(image, label)`.
    """

    name: str
    task: str
    num_classes: int
    image_shape: Callable
    load: Callable


def _in_memory_load(arrays):
    """A loader for a dataset held as NumPy arrays, `arrays(config, channels)`
    -> `((x_train, y_train), (x_test, y_test))`, split as the recipe says:
    the validation split is the training split's last `validation_fraction`
    (none when train and test are swapped, as in the CC paper)."""

    def load(config, seed, channels):
        (x_train, y_train), (x_test, y_test) = arrays(config, channels)
        if config.reverse_split:
            (x_train, y_train), (x_test, y_test) = (x_test, y_test), (x_train, y_train)
        validation = None
        if config.validation_fraction and not config.reverse_split:
            cut = int(round(len(x_train) * (1 - config.validation_fraction)))
            validation = (x_train[cut:], y_train[cut:])
            x_train, y_train = x_train[:cut], y_train[:cut]

        training = epochs.TrainingSource(
            tf.data.Dataset.from_tensor_slices((x_train, y_train)),
            prepare=lambda image, label, seed: (image, label),  # in [0, 1], no augmentation
            shuffle_buffer=len(x_train),
        )

        def batched(x, y):
            dataset = tf.data.Dataset.from_tensor_slices((x, y))
            return dataset.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

        return (
            training,
            None if validation is None else batched(*validation),
            batched(x_test, y_test),
        )

    return load


def digits_shape(config, channels):
    """The embedded digits' shape: square, `config.image_size` a side."""
    return (config.image_size, config.image_size, channels)


digits_for_run = _in_memory_load(
    lambda config, channels: digits.load_digits(config.image_size, channels=channels)
)
"""The embedded digits, split as the recipe says (a `Dataset.load`)."""


def fashion_mnist_shape(config, channels):
    """Fashion-MNIST's 28x28 images with the channels the model takes."""
    return (28, 28, channels)


fashion_mnist_for_run = _in_memory_load(
    lambda config, channels: fashion_mnist.load_fashion_mnist(channels=channels)
)
"""Fashion-MNIST, split as the recipe says (a `Dataset.load`)."""


def tfds_shape(config, channels):
    """A tensorflow-datasets dataset's input shape: Cityscapes' crops, or its fixed size."""
    if config.dataset == "cityscapes":  # trained on crops, evaluated at the crop size
        return (*config.crop_size, 3)
    return tfds_datasets.DATASETS[config.dataset].image_shape


def tfds_for_run(config, seed, channels):
    """A tensorflow-datasets dataset, split and augmented as the recipe says."""
    name = config.dataset
    names = tfds_datasets.splits(name, config.validation_fraction, config.reverse_split)
    common = dict(
        batch_size=config.batch_size,
        seed=seed,
        data_dir=config.data_dir,
        crop_size=tuple(config.crop_size),
    )
    validation = names["validation"]
    return (
        tfds_datasets.training_source(
            name, names["train"], seed, config.data_dir, tuple(config.crop_size)
        ),
        None if validation is None else tfds_datasets.load(name, validation, **common),
        tfds_datasets.load(name, names["test"], **common),
    )


DATASETS = {}
"""Name -> `DatasetSpec` of every dataset the trainer knows: `keras_memblocks.registry.DATASETS`,
resolved, and any `register_dataset` added."""


def register_dataset(spec):
    """Adds a `DatasetSpec` in this process: recipes and the trainer then know it.

    A dataset the package ships is an entry of `keras_memblocks.registry.DATASETS`.
    """
    DATASETS[spec.name] = _with_known_task(spec)


for _entry in registry.DATASETS.values():
    register_dataset(
        DatasetSpec(
            _entry.name,
            _entry.task,
            _entry.num_classes,
            registry.load(_entry.image_shape),
            registry.load(_entry.load),
        )
    )


# === Lookups ===


def _lookup(kind, registry, name):
    if name not in registry:
        raise ValueError(
            f"Unknown {kind} {name!r}. Valid values for `{kind}`: "
            f"{', '.join(repr(n) for n in registry)}."
        )
    return registry[name]


def model_spec(name):
    """The `ModelSpec` registered as `name`; a `ValueError` listing the names otherwise."""
    return _lookup("model", MODELS, name)


def dataset_spec(name):
    """The `DatasetSpec` registered as `name`; a `ValueError` listing the names otherwise."""
    return _lookup("dataset", DATASETS, name)


def task_spec(config):
    """The task of a config's model, checked against its dataset's."""
    model, dataset = model_spec(config.model), dataset_spec(config.dataset)
    if model.task != dataset.task:
        raise ValueError(
            f"Model {config.model!r} is a {model.task} model but dataset {config.dataset!r} "
            f"is a {dataset.task} dataset: choose a {dataset.task} model "
            f"({', '.join(n for n, s in MODELS.items() if s.task == dataset.task)})."
        )
    return TASKS[model.task]


def input_shape(config):
    """Deprecated since 0.7.0: `keras_memblocks.training.plan.resolve(config)`
    holds the input shape (`.model_args["input_shape"]`) with the rest of the
    config's names resolved."""
    warnings.warn(
        "specs.input_shape(config) is deprecated since keras-memblocks 0.7.0; write "
        "keras_memblocks.training.plan.resolve(config).model_args['input_shape'].",
        DeprecationWarning,
        stacklevel=2,
    )
    channels = model_spec(config.model).input_channels(config.model_args)
    return tuple(dataset_spec(config.dataset).image_shape(config, channels))
