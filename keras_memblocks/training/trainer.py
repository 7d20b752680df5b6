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
from keras_memblocks.data import epochs as data_epochs
from keras_memblocks.optimizers import SGDWithL2
from keras_memblocks.training import specs
from keras_memblocks.training.distributed_loop import fit_distributed
from keras_memblocks.training.run_directory import RunLock
from keras_memblocks.training.run_directory import check_config
from keras_memblocks.utils import extras


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
    (source, validation_data, test_data), steps = _load_datasets(config, seed)
    train_data = _training_stream(config, source, seed, first_epoch, steps)
    return (train_data, validation_data, test_data), steps


def _load_datasets(config, seed):
    channels = specs.model_spec(config.model).input_channels(config.model_args)
    source, validation_data, test_data = specs.dataset_spec(config.dataset).load(
        config, seed, channels
    )
    steps = data_epochs.steps_per_epoch(source, config.batch_size, config.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(
            f"The {config.dataset} training split has fewer examples than one batch of "
            f"{config.batch_size}; use a smaller batch_size."
        )
    return (source, validation_data, test_data), steps


def _training_stream(config, source, seed, first_epoch, steps):
    return data_epochs.epoch_stream(
        source, seed, first_epoch, config.epochs, config.batch_size, steps
    )


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
RUN_FILES = (
    "best.keras",
    "best.json",
    "last.keras",
    "history.csv",
    "results.json",
    "config.json",
    "backup",
    "tensorboard",
)


class FinishedRunError(ValueError):
    """`train` was asked to train into a directory whose run already finished.

    Examples:
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


class TrainingDivergedError(ValueError):
    """A run stopped at its first epoch with a non-finite loss or weights.

    Its `results.json` records the epoch and why (`"status": "diverged"`),
    the checkpoint keeps the last finite epoch, and running it again
    raises this error again until `overwrite=True` trains it afresh.

    Examples:
        >>> import tempfile
        >>> from keras_memblocks.training import TrainingDivergedError, get_recipe, train
        >>> config = get_recipe("digits").replace(
        ...     epochs=2, max_steps_per_epoch=2, learning_rate=1e9,
        ...     model_args={"dataset": "cifar10", "width": 1})
        >>> try:
        ...     train(config, tempfile.mkdtemp(), verbose=0)
        ... except TrainingDivergedError as error:
        ...     print(str(error).startswith("Training diverged at epoch"))
        True
    """


class _Diverged(Exception):
    def __init__(self, epoch, reason):
        super().__init__(reason)
        self.epoch, self.reason = epoch, reason


class FiniteGuard(keras.callbacks.Callback):
    """Stops training at the end of the first epoch whose loss, or any of
    whose weights, is NaN or inf: a diverged run is not trained on to its
    last epoch, and the callbacks after this one (the backup, the
    checkpoint) never see that epoch."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise _Diverged(epoch + 1, f"the training loss is {float(loss)}")
        for weight in self.model.weights:
            values = keras.ops.convert_to_numpy(weight)
            if not np.isfinite(values).all():
                count = int(np.size(values) - np.isfinite(values).sum())
                raise _Diverged(epoch + 1, f"{count} values of {weight.path} are NaN or inf")


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint(save_best_only=True)` whose best value survives a resume.

    Keras starts the best value afresh in every process, so the first epoch
    after a resume replaced `best.keras` even when it was worse. The value
    (and its epoch) is written beside the model after every save, to
    `best.json`, and read back as the threshold when the run resumes.
    """

    def __init__(self, filepath, monitor, mode):
        self.state_path = Path(filepath).with_suffix(".json")
        state = self.read_state(filepath)
        super().__init__(
            filepath,
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            initial_value_threshold=None if state is None else state["best"],
        )

    @staticmethod
    def read_state(filepath):
        """`{"best", "epoch"}` of the model saved at `filepath`, or `None`."""
        state_path = Path(filepath).with_suffix(".json")
        if not (Path(filepath).exists() and state_path.exists()):
            return None
        return json.loads(state_path.read_text())

    def _save_model(self, epoch, batch, logs):
        before = self.best
        super()._save_model(epoch, batch, logs)
        if self.best != before:  # saved: the model first, then its value
            temporary = self.state_path.with_suffix(".json.partial")
            temporary.write_text(json.dumps({"best": float(self.best), "epoch": epoch + 1}))
            temporary.replace(self.state_path)


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

    Examples:
        One short epoch on the embedded digits:

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
    # First: MultiWorkerMirroredStrategy must exist before TF runs any op.
    strategy = strategy or _strategy(config.strategy)
    with RunLock(output_dir):  # one run per directory; a second one stops here
        if overwrite:  # whatever this package wrote there, finished or not
            _clear_run(output_dir)
        check_config(output_dir, config.to_dict(), overwrite)
        finished = finished_results(output_dir)
        if finished is not None:
            _raise_finished(output_dir, finished)
        with _global_settings(config):
            return _train(config, output_dir, seed, verbose, strategy)


def _raise_finished(output_dir, results):
    if results.get("status") == "diverged":
        raise TrainingDivergedError(results["diverged"]["message"])
    raise FinishedRunError(
        f"The run in {output_dir} already finished: its results are in "
        f"{output_dir / 'results.json'}. Pass overwrite=True (memblocks train "
        "--overwrite) to train it again, or choose another output directory."
    )


def _train(config, output_dir, seed, verbose, strategy):
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_model(config)
    (source, validation_data, test_data), steps_per_epoch = _load_datasets(config, seed)
    validation_data, test_data = (_with_aux_targets(d, model) for d in (validation_data, test_data))
    with strategy.scope():
        compile_model(model, config, steps_per_epoch)
    callbacks, checkpoint_path, timer = make_callbacks(
        config, output_dir, validation_data is not None
    )
    first_epoch = _restore(model, callbacks, strategy)
    train_data = _with_aux_targets(
        _training_stream(config, source, seed, first_epoch, steps_per_epoch), model
    )
    try:
        seconds = fit(
            model,
            config,
            strategy,
            train_data,
            validation_data,
            steps_per_epoch,
            callbacks,
            verbose,
        )
    except _Diverged as diverged:
        _record_divergence(config, output_dir, seed, checkpoint_path, diverged)
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


def _record_divergence(config, output_dir, seed, checkpoint_path, diverged):
    """Writes the diverged run's `results.json`, then raises `TrainingDivergedError`."""
    _deduplicate_history(output_dir / "history.csv")
    state = BestCheckpoint.read_state(checkpoint_path)
    if state is not None:
        kept = f"{checkpoint_path.name} keeps epoch {state['epoch']}, the best finite one"
    elif checkpoint_path.exists():  # last.keras: the epoch before
        kept = f"{checkpoint_path.name} keeps epoch {diverged.epoch - 1}, the last finite one"
    else:
        kept = "no model was kept (the first epoch diverged)"
    message = (
        f"Training diverged at epoch {diverged.epoch} of {config.epochs}: {diverged.reason}; "
        f"{kept}. Try a lower learning rate (--learning-rate), or look for NaN or inf in the "
        f"data. {output_dir / 'results.json'} records it; --overwrite trains it again."
    )
    results = {
        "status": "diverged",
        "seed": seed,
        "diverged": {"epoch": diverged.epoch, "reason": diverged.reason, "message": message},
        "model_path": str(checkpoint_path) if checkpoint_path.exists() else None,
        "config": config.to_dict(),
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=2, default=list) + "\n")
    raise TrainingDivergedError(message)


def _restore(model, callbacks, strategy):
    """Restores an interrupted run's backup now; returns its first epoch to train.

    `fit` restores it again (the same files), but the training stream must
    know beforehand which epoch it starts at.
    """
    (backup,) = [c for c in callbacks if isinstance(c, keras.callbacks.BackupAndRestore)]
    backup.set_model(model)
    with strategy.scope():  # the optimizer's variables, if it builds them, as fit would
        backup.on_train_begin()
    return getattr(model, "_initial_epoch", None) or 0


def make_callbacks(config, output_dir, with_validation):
    """`(callbacks, checkpoint path, StepTimer)` of a run in `output_dir`.

    With validation data the checkpoint keeps the best model on the task's
    monitored metric (`best.keras`), else the last one (`last.keras`).
    """
    if with_validation:
        task = specs.task_spec(config)
        checkpoint_path = output_dir / "best.keras"
        checkpoint = BestCheckpoint(checkpoint_path, monitor=task.monitor, mode=task.mode)
    else:
        checkpoint_path = output_dir / "last.keras"
        checkpoint = keras.callbacks.ModelCheckpoint(checkpoint_path)
    timer = StepTimer()
    callbacks = [
        keras.callbacks.CSVLogger(output_dir / "history.csv", append=True),
        # Before the backup and the checkpoint: a non-finite epoch reaches neither.
        FiniteGuard(),
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

    Examples:
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
            # Never reported under another config's name, nor a diverged run as a result.
            check_config(seed_dir, config.to_dict(), overwrite=False)
            if finished.get("status") == "diverged":
                _raise_finished(seed_dir, finished)
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
