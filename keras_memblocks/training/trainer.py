"""One training run from a `TrainingConfig`, and several seeds of it."""

import contextlib
import json
import numbers
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_memblocks import models
from keras_memblocks.data import epochs as data_epochs
from keras_memblocks.optimizers import SGDWithL2
from keras_memblocks.training import distribution
from keras_memblocks.training import run_directory
from keras_memblocks.training import specs
from keras_memblocks.training.checkpoints import UNKNOWN
from keras_memblocks.training.checkpoints import BestCheckpoint
from keras_memblocks.training.checkpoints import Diverged
from keras_memblocks.training.checkpoints import EpochBackup
from keras_memblocks.training.checkpoints import FiniteGuard
from keras_memblocks.training.checkpoints import HistoryFile
from keras_memblocks.training.checkpoints import LastCheckpoint
from keras_memblocks.training.checkpoints import RunFileError
from keras_memblocks.training.checkpoints import best_state
from keras_memblocks.training.checkpoints import finished_history
from keras_memblocks.training.distributed_loop import fit_distributed
from keras_memblocks.training.run_directory import RunLock
from keras_memblocks.training.run_directory import check_config
from keras_memblocks.utils import extras
from keras_memblocks.utils import files
from keras_memblocks.utils.files import atomic_write_json


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


def _with_aux_targets(dataset, model):
    if dataset is None or not isinstance(model.output, dict):
        return dataset
    return dataset.map(lambda x, y: (x, {key: y for key in model.output}))


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step (median reported)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


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


def finished_results(output_dir):
    """The `results.json` of a finished run in `output_dir`, or `None`.

    A `results.json` that cannot be read (an older version could leave it
    empty when the disk filled up) does not count: the run resumes and writes
    it again.
    """
    path = Path(output_dir) / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


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
    with the same `output_dir`, to the result an uninterrupted run gives: at
    most the current epoch is lost (`keras_memblocks.training.checkpoints`).
    Only a directory this package wrote into is used: one holding run files
    of another origin raises `ForeignFilesError` and is left as it is.
    Writes to `output_dir`: `best.keras` (or `last.keras` without
    validation) with its `.json`, `history.csv`, `results.json`, `backup/`
    until the run ends, and `tensorboard/` when asked.

    `config.strategy` picks the distribution
    (`keras_memblocks.training.distribution`: "mirrored", all local GPUs;
    "multiworker", the cluster in TF_CONFIG; "data-parallel", every device of
    every JAX process); a `tf.distribute.Strategy` or a
    `keras.distribution.Distribution` passed as `strategy` is used instead.
    `batch_size` is the global batch. In a data-parallel run of several
    processes only process 0 writes to `output_dir` and returns the results;
    the others train with it and return `None`.

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
    strategy = distribution.resolve(strategy, config.strategy)
    if isinstance(strategy, distribution.DataParallelRun):
        strategy.check_batch_size(config.batch_size)
    handshake = distribution.Handshake(strategy)
    if distribution.is_follower(strategy):
        with _global_settings(config):
            return _follow(config, seed, strategy, handshake)
    try:
        with RunLock(output_dir):  # one run per directory; a second one stops here
            run_directory.claim(output_dir, config.to_dict())  # never a folder we did not write
            if overwrite:  # whatever this package wrote there, finished or not
                run_directory.clear(output_dir)
            check_config(output_dir, config.to_dict(), overwrite)
            finished = finished_results(output_dir)
            if finished is not None:
                _raise_finished(output_dir, finished)
            handshake.go()
            with _global_settings(config):
                return _train(config, output_dir, seed, verbose, strategy, handshake)
    except BaseException:
        handshake.stop()  # the other processes stop too, if this one did before training
        raise


def _raise_finished(output_dir, results):
    if results.get("status") == "diverged":
        raise TrainingDivergedError(results["diverged"]["message"])
    raise FinishedRunError(
        f"The run in {output_dir} already finished: its results are in "
        f"{output_dir / 'results.json'}. Pass overwrite=True (memblocks train "
        "--overwrite) to train it again, or choose another output directory."
    )


def _train(config, output_dir, seed, verbose, strategy, handshake):
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_model(config)
    (source, validation_data, test_data), steps_per_epoch = _load_datasets(config, seed)
    validation_data, test_data = (_with_aux_targets(d, model) for d in (validation_data, test_data))
    with strategy.scope():
        compile_model(model, config, steps_per_epoch)
    checkpoint_path = output_dir / ("best.keras" if validation_data is not None else "last.keras")
    best = _best_so_far(checkpoint_path, config, steps_per_epoch, validation_data)
    callbacks, backup, timer = make_callbacks(config, output_dir, checkpoint_path, best)
    if isinstance(strategy, distribution.DataParallelRun):
        local = distribution.local_copy(strategy, model, lambda: _compiled(config, steps_per_epoch))
        with strategy.local():
            first_epoch = backup.restore(local)
        handshake.start(first_epoch)
        distribution.share_state(strategy, model, local)
        if validation_data is not None:
            # First: the history and the checkpoint read the validation metrics.
            callbacks.insert(0, distribution.LocalValidation(local, validation_data, strategy))
            validation_data = None
    else:
        epoch = distribution.agreed_epoch(strategy, backup.latest(), config.epochs)
        with strategy.scope():  # the optimizer's variables, if it builds them, as fit would
            first_epoch = backup.restore(model, epoch)
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
            initial_epoch=first_epoch,
        )
    except Diverged as diverged:
        _record_divergence(config, output_dir, seed, checkpoint_path, diverged)
    history = finished_history(output_dir / "history.csv", config.epochs)
    test_metrics = evaluate_checkpoint(checkpoint_path, config, steps_per_epoch, test_data)
    results = {
        "seed": seed,
        "epochs_completed": len(history),
        "test": test_metrics,
        "parameters": int(model.count_params()),
        "trainable_parameters": models.count_trainable_parameters(model),
        "train_seconds_this_session": round(seconds, 2),
        "replicas": int(strategy.num_replicas_in_sync),
        "processes": int(getattr(strategy, "num_processes", 1)),
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
    atomic_write_json(output_dir / "results.json", results)  # the run is finished here
    backup.remove()
    return results


def _compiled(config, steps_per_epoch):
    model = build_model(config)
    compile_model(model, config, steps_per_epoch)
    return model


def _follow(config, seed, strategy, handshake):
    """A data-parallel run's process other than 0: the same model, data and
    steps as process 0 (`_train`), from the epoch and weights process 0
    sends; its share of each batch; no files, no output. Returns `None`."""
    if not handshake.receive_decision():  # the seed already finished
        return None
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_model(config)
    (source, _, _), steps_per_epoch = _load_datasets(config, seed)
    with strategy.scope():
        compile_model(model, config, steps_per_epoch)
    first_epoch = handshake.receive_start()
    distribution.share_state(strategy, model)
    train_data = _with_aux_targets(
        _training_stream(config, source, seed, first_epoch, steps_per_epoch), model
    )
    try:
        fit(
            model,
            config,
            strategy,
            train_data,
            None,
            steps_per_epoch,
            [FiniteGuard()],
            verbose=0,
            initial_epoch=first_epoch,
        )
    except Diverged as diverged:
        raise TrainingDivergedError(
            f"Training diverged at epoch {diverged.epoch} of {config.epochs}: "
            f"{diverged.reason}; process 0's results.json records it."
        ) from None
    return None


def _best_so_far(checkpoint_path, config, steps_per_epoch, validation_data):
    """The value the best checkpoint must beat when a run resumes (`None`: a new run).

    A `best.keras` whose value no `best.json` vouches for is measured again
    on the validation data, so it is never replaced by a worse model.
    """
    if validation_data is None:
        return None
    state = best_state(checkpoint_path)
    if state is None or state is not UNKNOWN:
        return None if state is None else state["best"]
    monitor = specs.task_spec(config).monitor
    from keras_memblocks.model_files import load_model_file  # the user-facing loader's errors

    try:
        kept = load_model_file(checkpoint_path)
    except ValueError as error:
        raise RunFileError(
            f"{checkpoint_path} cannot be loaded and no earlier copy of it exists ({error}); "
            "pass --overwrite (overwrite=True) to train the run afresh."
        ) from None
    compile_model(kept, config, steps_per_epoch)
    metrics = kept.evaluate(validation_data, return_dict=True, verbose=0)
    value = float(metrics[monitor.removeprefix("val_")])
    atomic_write_json(
        checkpoint_path.with_suffix(".json"),
        {"best": value, "epoch": None, "sha256": files.sha256(checkpoint_path), "previous": None},
    )
    return value


def _record_divergence(config, output_dir, seed, checkpoint_path, diverged):
    """Writes the diverged run's `results.json`, then raises `TrainingDivergedError`."""
    state = best_state(checkpoint_path)
    if isinstance(state, dict) and state.get("best") is not None:
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
    atomic_write_json(output_dir / "results.json", results)
    raise TrainingDivergedError(message)


def make_callbacks(config, output_dir, checkpoint_path, best=None):
    """`(callbacks, EpochBackup, StepTimer)` of a run in `output_dir`, in the order
    `keras_memblocks.training.checkpoints` explains.

    `checkpoint_path` named `best.keras` keeps the best model on the task's
    monitored metric (`best` is the value to beat); any other name, the last one.
    """
    if checkpoint_path.name == "best.keras":
        task = specs.task_spec(config)
        checkpoint = BestCheckpoint(checkpoint_path, task.monitor, task.mode, best)
    else:
        checkpoint = LastCheckpoint(checkpoint_path)
    # A multi-worker run's workers resume from the epoch all of them hold.
    backup = EpochBackup(output_dir / "backup", keep=2 if config.strategy == "multiworker" else 1)
    timer = StepTimer()
    # The history first: a diverged epoch's row (its NaN loss) is kept as the record.
    callbacks = [HistoryFile(output_dir / "history.csv"), FiniteGuard(), checkpoint, backup, timer]
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(output_dir / "tensorboard"))
    return callbacks, backup, timer


def fit(
    model,
    config,
    strategy,
    train_data,
    validation_data,
    steps_per_epoch,
    callbacks,
    verbose=None,
    initial_epoch=0,
):
    """Trains from `initial_epoch` to `config.epochs`; returns the seconds it took."""
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
            initial_epoch=initial_epoch,
        )
    else:
        scope = contextlib.nullcontext()
        if isinstance(strategy, distribution.DataParallelRun):
            # Keras' distribution shards the batches only while it is set; the
            # callbacks, which save on process 0 alone, run without it.
            scope = strategy.scope()
            callbacks = [distribution.Undistributed(c, strategy) for c in callbacks]
        with scope:
            model.fit(
                train_data,
                validation_data=validation_data,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
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


SUMMARY_MARK = f"<!-- {files.MARK}: train_seeds -->"
SEED_RANGE = (0, 2**32 - 1)  # what keras.utils.set_random_seed takes


def check_seeds(seeds):
    """`seeds` as a list of Python ints, each in `SEED_RANGE` and given once.

    Examples:
        >>> from keras_memblocks.training.trainer import check_seeds
        >>> try:
        ...     check_seeds([0, 0])
        ... except ValueError as error:
        ...     print(error)
        --seeds (seeds=) lists seed 0 twice; give each seed once: one run per seed.
    """
    checked = []
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"--seeds (seeds=) takes integers. Received: {files.shorten(seed)}")
        if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
            raise ValueError(
                f"--seeds (seeds=) takes integers from {SEED_RANGE[0]} to {SEED_RANGE[1]}. "
                f"Received: {seed}"
            )
        if int(seed) in checked:
            raise ValueError(
                f"--seeds (seeds=) lists seed {seed} twice; give each seed once: one run per seed."
            )
        checked.append(int(seed))
    if not checked:
        raise ValueError("--seeds (seeds=) is empty; give at least one seed.")
    return checked


def train_seeds(config, seeds, output_dir, verbose=None, overwrite=False):
    """Runs `train` once per seed; writes `summary.md` with mean ± sd.

    A seed whose run already finished in `output_dir/seed_<s>` is not
    trained again (a line says so and where its results are, unless
    `verbose=0`) unless
    `overwrite`; its results enter the summary as they are.

    Returns the summary dict (the per-seed values and their mean and sd,
    in percent for accuracy and IoU, as the papers report them; `runs`:
    every seed's results dict), or `None` in a data-parallel run's process
    other than 0 (process 0 writes and returns the summary).

    Examples:
        >>> import tempfile
        >>> from keras_memblocks.training import get_recipe, train_seeds
        >>> config = get_recipe("digits").replace(epochs=1, max_steps_per_epoch=2,
        ...                                       model_args={"dataset": "cifar10", "width": 2})
        >>> summary = train_seeds(config, seeds=(0, 1), output_dir=tempfile.mkdtemp(), verbose=0)
        >>> summary["metric"], summary["seeds"], len(summary["values"])
        ('accuracy', [0, 1], 2)
    """
    seeds = check_seeds(seeds)
    output_dir = Path(output_dir)
    # One DataParallelRun for every seed (it joins no processes: `distribution.connect` did).
    strategy = distribution.make("data-parallel") if config.strategy == "data-parallel" else None
    if distribution.is_follower(strategy):  # process 0 decides, writes and reports
        for seed in seeds:
            train(config, output_dir / f"seed_{seed}", seed, verbose, strategy, overwrite)
        return None
    summary_files = [output_dir / "summary.md", output_dir / "summary.json"]
    try:
        for path in summary_files:  # checked before training: a user's own file is never replaced
            # What versions before 0.3 wrote, unmarked: the table's header, the summary's first key.
            run_directory.check_ours(
                path, legacy_starts=("| model | dataset | ", '{\n  "metric": ')
            )
    except BaseException:
        distribution.Handshake(strategy).stop()  # the other processes stop at the first seed
        raise
    runs = []
    for seed in seeds:
        seed_dir = output_dir / f"seed_{seed}"
        handshake = distribution.Handshake(strategy)
        try:
            finished = None if overwrite else finished_results(seed_dir)
            if finished is not None:
                # Never reported under another config's name, nor a diverged run as a result.
                check_config(seed_dir, config.to_dict(), overwrite=False)
                if finished.get("status") == "diverged":
                    _raise_finished(seed_dir, finished)
                handshake.skip()
        except BaseException:
            handshake.stop()  # an error above stops the other processes of the run too
            raise
        if finished is not None:
            if verbose != 0:  # verbose=0 is silent, as in fit
                print(
                    f"seed {seed}: already finished, not trained again (results in "
                    f"{seed_dir / 'results.json'}; --overwrite trains it again)",
                    flush=True,
                )
            runs.append(finished)
        else:
            runs.append(train(config, seed_dir, seed, verbose, strategy, overwrite))
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
        SUMMARY_MARK,
        f"| model | dataset | {metric} (mean ± sd over {len(seeds)} seeds) |",
        "|---|---|---|",
        f"| {config.model} {json.dumps(config.model_args, default=list)} | {config.dataset} "
        f"| {summary['mean']:.2f} ± {summary['sd']:.2f} |",
    ]
    files.atomic_write(summary_files[0], "\n".join(lines) + "\n")
    summary["model_paths"] = [r["model_path"] for r in runs]
    atomic_write_json(summary_files[1], {"written_by": files.PACKAGE, **summary})
    summary["runs"] = runs  # every seed's results dict (not written: results.json has each)
    return summary
