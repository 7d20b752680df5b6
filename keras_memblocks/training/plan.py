"""A run's plan: its `TrainingConfig` with every name resolved once, and the
parts built from it: the model, the data, the optimizer and its schedule,
Keras' global settings.

`resolve` checks a config and looks its model, dataset and task up in the
registries (`keras_memblocks.training.specs`) once, before any TensorFlow
work; every other function here takes the `RunPlan` it returns and looks
nothing up again (given a `TrainingConfig` instead, as users may call them,
each resolves it first). Nothing here touches the run directory.
"""

import contextlib
import dataclasses
import inspect

import keras

from keras_memblocks.data import epochs as data_epochs
from keras_memblocks.optimizers import SGDWithL2
from keras_memblocks.training import specs
from keras_memblocks.training.recipes import TrainingConfig


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """A checked `TrainingConfig` and what its names resolve to (`resolve`).

    Attributes:
        config: the `TrainingConfig` (its fields as the user set them).
        model: the `specs.ModelSpec` of `config.model`.
        dataset: the `specs.DatasetSpec` of `config.dataset`.
        task: the `specs.TaskSpec` both share: loss, metrics, monitored metric.
        channels: the input channels the model's layout takes.
        model_args: the builder's keyword arguments, the dataset's
            `num_classes` and `input_shape` filled in unless the recipe sets them.
    """

    config: TrainingConfig
    model: specs.ModelSpec
    dataset: specs.DatasetSpec
    task: specs.TaskSpec
    channels: int
    model_args: dict


def resolve(config):
    """Checks `config` and resolves its names into a `RunPlan`.

    Every mistake a config can hold (a field's type or range, an unknown
    model or dataset, a model of another task than its dataset, an argument
    the model's builder does not take) raises `ValueError` here, before any
    data is read or any model built. A `RunPlan` passes through unchanged.

    Examples:
        >>> from keras_memblocks.training import get_recipe
        >>> from keras_memblocks.training.plan import resolve
        >>> run = resolve(get_recipe("digits"))
        >>> run.task.monitor, run.model_args["input_shape"], run.model_args["num_classes"]
        ('val_accuracy', (32, 32, 3), 10)
        >>> digits = get_recipe("digits")
        >>> resolve(digits.replace(model_args={**digits.model_args, "widht": 8}))
        Traceback (most recent call last):
        ...
        ValueError: Bad `model_args` for vgg_like: got an unexpected keyword argument 'widht'
    """
    if isinstance(config, RunPlan):
        return config
    config.validate()  # the fields, and a known model and dataset of the same task
    model, dataset = specs.model_spec(config.model), specs.dataset_spec(config.dataset)
    task = specs.TASKS[model.task]
    channels = model.input_channels(config.model_args)
    model_args = {
        "num_classes": dataset.num_classes,
        "input_shape": tuple(dataset.image_shape(config, channels)),
        **config.model_args,
    }
    try:
        inspect.signature(model.builder).bind(**model_args)
    except TypeError as error:
        raise ValueError(f"Bad `model_args` for {config.model}: {error}") from None
    except ValueError:  # a builder with no introspectable signature: checked when called
        pass
    return RunPlan(config, model, dataset, task, channels, model_args)


def build_model(config):
    """The model a config (or a `RunPlan`) names, before any data is read.

    `num_classes` and `input_shape` default to the dataset's.

    Examples:
        >>> from keras_memblocks.training import build_model, get_recipe
        >>> model = build_model(get_recipe("digits"))
        >>> model.input.shape, model.output.shape
        ((None, 32, 32, 3), (None, 10))
    """
    run = resolve(config)
    try:
        return run.model.builder(**run.model_args)
    except TypeError as error:  # an unknown keyword of a builder taking **kwargs
        raise ValueError(f"Bad `model_args` for {run.config.model}: {error}") from error


def make_datasets(config, seed, first_epoch=0):
    """`(train, validation or None, test)` batched datasets, and the number
    of training steps per epoch.

    `train` holds epochs `first_epoch` .. `config.epochs - 1` one after
    another, each capped at `max_steps_per_epoch` batches, shuffled and
    augmented by the seed and its own number (`keras_memblocks.data.epochs`),
    for `model.fit(..., steps_per_epoch=steps)`.
    """
    run = resolve(config)
    (source, validation_data, test_data), steps = load_datasets(run, seed)
    train_data = training_stream(run, source, seed, first_epoch, steps)
    return (train_data, validation_data, test_data), steps


def load_datasets(run, seed):
    """`(training source, validation or None, test)` of a `RunPlan` and the
    training steps per epoch."""
    run = resolve(run)
    config = run.config
    source, validation_data, test_data = run.dataset.load(config, seed, run.channels)
    if config.max_eval_steps is not None:  # quick runs: a few batches of each
        validation_data, test_data = (
            None if d is None else d.take(config.max_eval_steps)
            for d in (validation_data, test_data)
        )
    steps = data_epochs.steps_per_epoch(source, config.batch_size, config.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(
            f"The {config.dataset} training split has fewer examples than one batch of "
            f"{config.batch_size}; use a smaller batch_size."
        )
    return (source, validation_data, test_data), steps


def training_stream(run, source, seed, first_epoch, steps):
    """Epochs `first_epoch` .. `config.epochs - 1` of `source`, one after another."""
    config = resolve(run).config
    return data_epochs.epoch_stream(
        source, seed, first_epoch, config.epochs, config.batch_size, steps
    )


def with_aux_targets(dataset, model):
    """`dataset` with its targets repeated for each output of a model with several
    (the auxiliary segmentation head); `dataset` itself otherwise."""
    if dataset is None or not isinstance(model.output, dict):
        return dataset
    return dataset.map(lambda x, y: (x, {key: y for key in model.output}))


def learning_rate_schedule(config, steps_per_epoch):
    """The recipe's schedule: constant, polynomial, or steps at its milestones."""
    if config.schedule == "constant":
        return config.learning_rate
    if config.schedule == "poly":
        return keras.optimizers.schedules.PolynomialDecay(
            config.learning_rate,
            decay_steps=config.epochs * steps_per_epoch,
            end_learning_rate=config.min_learning_rate,
            power=config.poly_power,
        )
    boundaries = [int(m) * steps_per_epoch for m in config.milestones]
    if not boundaries:
        return config.learning_rate
    values = [config.learning_rate * config.gamma**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def compile_model(model, run, steps_per_epoch):
    """Compiles with a `RunPlan`'s optimizer and schedule and its task's loss
    and metrics."""
    run = resolve(run)
    config = run.config
    schedule = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    else:
        optimizer = SGDWithL2(schedule, momentum=config.momentum, l2=config.weight_decay)
    model.compile(
        optimizer=optimizer,
        jit_compile=config.jit_compile,
        **run.task.compile_args(model, config),
    )


def compiled_model(run, steps_per_epoch):
    """A new model of a `RunPlan`, compiled."""
    model = build_model(run)
    compile_model(model, run, steps_per_epoch)
    return model


@contextlib.contextmanager
def global_settings(config):
    """Keras' global dtype policy for the run, the caller's restored on any exit."""
    caller_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if config.mixed_precision else "float32"
    )
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(caller_policy)
