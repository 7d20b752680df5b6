"""One training run from a `TrainingConfig`, and several seeds of it."""

import contextlib
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_memblocks import models
from keras_memblocks.optimizers import SGDWithL2
from keras_memblocks.training import specs
from keras_memblocks.training.distributed_loop import fit_distributed
from keras_memblocks.utils import extras


def build_model(config):
    """The model a config names (checked before any data is read).

    `num_classes` and `input_shape` default to the dataset's.

    Example:

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


def make_datasets(config, seed):
    """`(train, validation or None, test)` batched datasets, capped at
    `max_steps_per_epoch`, and the number of training steps per epoch."""
    channels = specs.model_spec(config.model).input_channels(config.model_args)
    train_data, validation_data, test_data = specs.dataset_spec(config.dataset).load(
        config, seed, channels
    )
    steps_per_epoch = int(train_data.cardinality())
    if steps_per_epoch < 0:  # unknown cardinality
        steps_per_epoch = config.max_steps_per_epoch or 1000
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
        train_data = train_data.take(steps_per_epoch)
    return (train_data, validation_data, test_data), steps_per_epoch


def learning_rate_schedule(config, steps_per_epoch):
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


def _strategy(name):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        # Reads the cluster from the TF_CONFIG environment variable.
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()  # the default (no distribution)


def _with_aux_targets(dataset, model):
    if dataset is None or not isinstance(model.output, dict):
        return dataset
    return dataset.map(lambda x, y: (x, {key: y for key in model.output}))


def _deduplicate_history(path):
    """Keeps the last row of every epoch (a run killed between logging an
    epoch and backing it up repeats that epoch when it resumes)."""
    if not path.exists():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    by_epoch = {int(row["epoch"]): row for row in rows}
    rows = [by_epoch[e] for e in sorted(by_epoch)]
    if rows:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return rows


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step (median reported)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


# What a run writes into its output directory (removed by `overwrite`).
RUN_FILES = ("best.keras", "last.keras", "history.csv", "results.json", "backup", "tensorboard")


class FinishedRunError(ValueError):
    """`train` was asked to train into a directory whose run already finished.

    Example:

    >>> import tempfile
    >>> from keras_memblocks.training import FinishedRunError, get_recipe, train
    >>> config = get_recipe("digits").replace(epochs=1, max_steps_per_epoch=1,
    ...                                       model_args={"dataset": "cifar10", "width": 1})
    >>> run = tempfile.mkdtemp()
    >>> _ = train(config, run, verbose=0)
    >>> try:
    ...     train(config, run, verbose=0)
    ... except FinishedRunError as error:
    ...     print("already finished" in str(error))
    True
    """


def finished_results(output_dir):
    """The `results.json` of a finished run in `output_dir`, or `None`."""
    path = Path(output_dir) / "results.json"
    return json.loads(path.read_text()) if path.exists() else None


def _clear_run(output_dir):
    for name in RUN_FILES:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@contextlib.contextmanager
def _global_settings(config):
    """Keras' global dtype policy for the run, the caller's restored on any exit."""
    caller_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if config.mixed_precision else "float32"
    )
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(caller_policy)


def train(config, output_dir, seed=0, verbose=None, strategy=None, overwrite=False):
    """Trains, keeps the best model on validation, evaluates it on test.

    A run killed at any point resumes where it stopped when started again
    with the same `output_dir` (`keras.callbacks.BackupAndRestore`): at most
    the current epoch is lost. Writes to `output_dir`: `best.keras` (or
    `last.keras` without validation), `history.csv`, `results.json`, and
    `tensorboard/` when asked.

    `config.strategy` picks the distribution ("mirrored": all local GPUs;
    "multiworker": the cluster in TF_CONFIG); a `tf.distribute.Strategy`
    passed as `strategy` is used instead. `batch_size` is the global batch.

    A run that already finished in `output_dir` (its `results.json`
    exists) is not trained again: `FinishedRunError` says where its results
    are, unless `overwrite=True`, which removes its files and starts over.
    Keras' global dtype policy is set for the run and the caller's is
    restored afterwards, also when the run fails.

    Returns:
        The results dict written to `results.json`.

    Example (one short epoch on the embedded digits):

    >>> import tempfile
    >>> from keras_memblocks.training import get_recipe, train
    >>> config = get_recipe("digits").replace(epochs=1, max_steps_per_epoch=2,
    ...                                       model_args={"dataset": "cifar10", "width": 2})
    >>> results = train(config, tempfile.mkdtemp(), verbose=0)
    >>> 0.0 <= results["test"]["accuracy"] <= 1.0
    True
    """
    config.validate()
    if config.tensorboard:
        extras.require("tensorboard", "tensorboard=True (memblocks train --tensorboard)")
    output_dir = Path(output_dir)
    if finished_results(output_dir) is not None:
        if not overwrite:
            raise FinishedRunError(
                f"The run in {output_dir} already finished: its results are in "
                f"{output_dir / 'results.json'}. Pass overwrite=True (memblocks train "
                "--overwrite) to train it again, or choose another output directory."
            )
        _clear_run(output_dir)
    # First: MultiWorkerMirroredStrategy must exist before TF runs any op.
    strategy = strategy or _strategy(config.strategy)
    output_dir.mkdir(parents=True, exist_ok=True)
    with _global_settings(config):
        return _train(config, output_dir, seed, verbose, strategy)


def _train(config, output_dir, seed, verbose, strategy):
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_model(config)
    (train_data, validation_data, test_data), steps_per_epoch = make_datasets(config, seed)
    train_data, validation_data, test_data = (
        _with_aux_targets(d, model) for d in (train_data, validation_data, test_data)
    )
    with strategy.scope():
        compile_model(model, config, steps_per_epoch)
    callbacks, checkpoint_path, timer = make_callbacks(
        config, output_dir, validation_data is not None
    )
    seconds = fit(
        model, config, strategy, train_data, validation_data, steps_per_epoch, callbacks, verbose
    )
    history = _deduplicate_history(output_dir / "history.csv")
    test_metrics = evaluate_checkpoint(checkpoint_path, config, steps_per_epoch, test_data)
    results = {
        "seed": seed,
        "epochs_completed": len(history),
        "test": test_metrics,
        "parameters": int(model.count_params()),
        "trainable_parameters": models.count_trainable_parameters(model),
        "train_seconds_this_session": round(seconds, 2),
        "replicas": int(strategy.num_replicas_in_sync),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "jit_compile": bool(model.jit_compile),  # what `config.jit_compile` resolved to
        # The first steps trace and compile; the median ignores them.
        "median_step_ms": round(1e3 * float(np.median(timer.seconds)), 3)
        if timer.seconds
        else None,
        "model_path": str(checkpoint_path),
        "config": config.to_dict(),
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=2, default=list) + "\n")
    return results


def make_callbacks(config, output_dir, with_validation):
    """`(callbacks, checkpoint path, StepTimer)` of a run in `output_dir`.

    With validation data the checkpoint keeps the best model on the task's
    monitored metric (`best.keras`), else the last one (`last.keras`).
    """
    if with_validation:
        task = specs.task_spec(config)
        checkpoint_path = output_dir / "best.keras"
        checkpoint = keras.callbacks.ModelCheckpoint(
            checkpoint_path, monitor=task.monitor, mode=task.mode, save_best_only=True
        )
    else:
        checkpoint_path = output_dir / "last.keras"
        checkpoint = keras.callbacks.ModelCheckpoint(checkpoint_path)
    timer = StepTimer()
    callbacks = [
        keras.callbacks.CSVLogger(output_dir / "history.csv", append=True),
        # double_checkpoint: a kill while the backup is written leaves a
        # corrupt file (seen in our kill test); Keras then falls back to the
        # previous epoch's copy.
        keras.callbacks.BackupAndRestore(output_dir / "backup", double_checkpoint=True),
        checkpoint,
        timer,
    ]
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(output_dir / "tensorboard"))
    return callbacks, checkpoint_path, timer


def fit(
    model, config, strategy, train_data, validation_data, steps_per_epoch, callbacks, verbose=None
):
    """Trains for `config.epochs`; returns the seconds it took."""
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2  # a bar in a terminal, a line per epoch in logs
    start = time.perf_counter()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Keras' fit fails under this strategy (keras-team/keras#20585).
        fit_distributed(
            model,
            strategy,
            train_data,
            validation_data,
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
    else:
        model.fit(
            train_data,
            validation_data=validation_data,
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )  # the datasets shuffle themselves, seeded
    return time.perf_counter() - start


def evaluate_checkpoint(checkpoint_path, config, steps_per_epoch, test_data):
    """The saved model's test metrics, `{name: float}` (loaded as a user would)."""
    best = keras.saving.load_model(checkpoint_path)
    compile_model(best, config, steps_per_epoch)
    metrics = best.evaluate(test_data, return_dict=True, verbose=0)
    return {name: float(value) for name, value in metrics.items()}


def main_metric(results):
    """`(name, value)` of a run's headline test number (the task's first
    metric present, else the loss)."""
    task = specs.TASKS[specs.model_spec(results["config"]["model"]).task]
    for key in task.headline_metrics:
        if key in results["test"]:
            return key, results["test"][key]
    return "loss", results["test"]["loss"]


def train_seeds(config, seeds, output_dir, verbose=None, overwrite=False):
    """Runs `train` once per seed; writes `summary.md` with mean ± sd.

    A seed whose run already finished in `output_dir/seed_<s>` is not
    trained again (a line says so and where its results are, unless
    `verbose=0`) unless
    `overwrite`; its results enter the summary as they are.

    Returns the summary dict (the per-seed values and their mean and sd,
    in percent for accuracy and IoU, as the papers report them; `runs`:
    every seed's results dict).

    Example:

    >>> import tempfile
    >>> from keras_memblocks.training import get_recipe, train_seeds
    >>> config = get_recipe("digits").replace(epochs=1, max_steps_per_epoch=2,
    ...                                       model_args={"dataset": "cifar10", "width": 2})
    >>> summary = train_seeds(config, seeds=(0, 1), output_dir=tempfile.mkdtemp(), verbose=0)
    >>> summary["metric"], summary["seeds"], len(summary["values"])
    ('accuracy', [0, 1], 2)
    """
    output_dir = Path(output_dir)
    runs = []
    for seed in seeds:
        seed_dir = output_dir / f"seed_{seed}"
        finished = None if overwrite else finished_results(seed_dir)
        if finished is not None:
            if verbose != 0:  # verbose=0 is silent, as in fit
                print(
                    f"seed {seed}: already finished, not trained again (results in "
                    f"{seed_dir / 'results.json'}; --overwrite trains it again)",
                    flush=True,
                )
            runs.append(finished)
        else:
            runs.append(train(config, seed_dir, seed=seed, verbose=verbose, overwrite=overwrite))
    metric, _ = main_metric(runs[0])
    scale = 1.0 if metric == "loss" else 100.0
    values = np.array([main_metric(r)[1] * scale for r in runs])
    summary = {
        "metric": metric,
        "seeds": list(seeds),
        "values": [round(float(v), 4) for v in values],
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }
    lines = [
        f"| model | dataset | {metric} (mean ± sd over {len(seeds)} seeds) |",
        "|---|---|---|",
        f"| {config.model} {json.dumps(config.model_args, default=list)} | {config.dataset} "
        f"| {summary['mean']:.2f} ± {summary['sd']:.2f} |",
    ]
    (output_dir / "summary.md").write_text("\n".join(lines) + "\n")
    summary["model_paths"] = [r["model_path"] for r in runs]
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["runs"] = runs  # every seed's results dict (not written: results.json has each)
    return summary
