"""`fit` and what runs around it: the callbacks of a run, the best value a resumed
run must beat, and the test evaluation of the model kept."""

import contextlib
import sys
import time

import keras
import tensorflow as tf

from keras_memblocks.training import distribution
from keras_memblocks.training.checkpoints import UNKNOWN
from keras_memblocks.training.checkpoints import BestCheckpoint
from keras_memblocks.training.checkpoints import EpochBackup
from keras_memblocks.training.checkpoints import FiniteGuard
from keras_memblocks.training.checkpoints import HistoryFile
from keras_memblocks.training.checkpoints import LastCheckpoint
from keras_memblocks.training.checkpoints import RunFileError
from keras_memblocks.training.checkpoints import best_state
from keras_memblocks.training.distributed_loop import fit_distributed
from keras_memblocks.training.plan import compile_model
from keras_memblocks.utils import files
from keras_memblocks.utils.files import atomic_write_json


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step (median reported)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def make_callbacks(run, output_dir, checkpoint_path, best=None):
    """`(callbacks, EpochBackup, StepTimer)` of a run in `output_dir`, in the order
    `keras_memblocks.training.checkpoints` explains.

    `checkpoint_path` named `best.keras` keeps the best model on the task's
    monitored metric (`best` is the value to beat); any other name, the last one.
    """
    config = run.config
    if checkpoint_path.name == "best.keras":
        checkpoint = BestCheckpoint(checkpoint_path, run.task.monitor, run.task.mode, best)
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


def best_so_far(checkpoint_path, run, steps_per_epoch, validation_data):
    """The value the best checkpoint must beat when a run resumes (`None`: a new run).

    A `best.keras` whose value no `best.json` vouches for is measured again
    on the validation data, so it is never replaced by a worse model.
    """
    if validation_data is None:
        return None
    state = best_state(checkpoint_path)
    if state is None or state is not UNKNOWN:
        return None if state is None else state["best"]
    monitor = run.task.monitor
    from keras_memblocks.model_files import load_model_file  # the user-facing loader's errors

    try:
        kept = load_model_file(checkpoint_path)
    except ValueError as error:
        raise RunFileError(
            f"{checkpoint_path} cannot be loaded and no earlier copy of it exists ({error}); "
            "pass --overwrite (overwrite=True) to train the run afresh."
        ) from None
    compile_model(kept, run, steps_per_epoch)
    metrics = kept.evaluate(validation_data, return_dict=True, verbose=0)
    value = float(metrics[monitor.removeprefix("val_")])
    atomic_write_json(
        checkpoint_path.with_suffix(".json"),
        {"best": value, "epoch": None, "sha256": files.sha256(checkpoint_path), "previous": None},
    )
    return value


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


def evaluate_checkpoint(checkpoint_path, run, steps_per_epoch, test_data):
    """The saved model's test metrics, `{name: float}` (loaded as a user would)."""
    best = keras.saving.load_model(checkpoint_path)
    compile_model(best, run, steps_per_epoch)
    metrics = best.evaluate(test_data, return_dict=True, verbose=0)
    return {name: float(value) for name, value in metrics.items()}
