"""The parts of a run built from its `TrainingConfig`: the model, the data, the
optimizer and its schedule, Keras' global settings.

Each takes the config and returns what `trainer.train` hands on; nothing here
touches the run directory.
"""

import contextlib

import keras

from keras_memblocks.data import epochs as data_epochs
from keras_memblocks.optimizers import SGDWithL2
from keras_memblocks.training import specs


def build_model(config):
    """The model a config names (checked before any data is read).

    `num_classes` and `input_shape` default to the dataset's.

    Examples:
        >>> from keras_memblocks.training import build_model, get_recipe
        >>> model = build_model(get_recipe("digits"))
        >>> model.input.shape, model.output.shape
        ((None, 32, 32, 3), (None, 10))
    """
    model_spec = specs.model_spec(config.model)
    args = {
        "num_classes": specs.dataset_spec(config.dataset).num_classes,
        "input_shape": specs.input_shape(config),
        **config.model_args,
    }
    try:
        return model_spec.builder(**args)
    except TypeError as error:  # an unknown keyword for this builder
        raise ValueError(f"Bad `model_args` for {config.model}: {error}") from error


def make_datasets(config, seed, first_epoch=0):
    """`(train, validation or None, test)` batched datasets, and the number
    of training steps per epoch.

    `train` holds epochs `first_epoch` .. `config.epochs - 1` one after
    another, each capped at `max_steps_per_epoch` batches, shuffled and
    augmented by the seed and its own number (`keras_memblocks.data.epochs`),
    for `model.fit(..., steps_per_epoch=steps)`.
    """
    (source, validation_data, test_data), steps = load_datasets(config, seed)
    train_data = training_stream(config, source, seed, first_epoch, steps)
    return (train_data, validation_data, test_data), steps


def load_datasets(config, seed):
    """`(training source, validation or None, test)` and the training steps per epoch."""
    channels = specs.model_spec(config.model).input_channels(config.model_args)
    source, validation_data, test_data = specs.dataset_spec(config.dataset).load(
        config, seed, channels
    )
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


def training_stream(config, source, seed, first_epoch, steps):
    """Epochs `first_epoch` .. `config.epochs - 1` of `source`, one after another."""
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


def compile_model(model, config, steps_per_epoch):
    """Compiles with the recipe's optimizer and schedule and the task's loss
    and metrics."""
    schedule = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    else:
        optimizer = SGDWithL2(schedule, momentum=config.momentum, l2=config.weight_decay)
    model.compile(
        optimizer=optimizer,
        jit_compile=config.jit_compile,
        **specs.task_spec(config).compile_args(model, config),
    )


def compiled_model(config, steps_per_epoch):
    """A new model of `config`, compiled."""
    model = build_model(config)
    compile_model(model, config, steps_per_epoch)
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
