"""One training run from a `TrainingConfig`: `train`.

The run's parts come from `plan` (model, data, optimizer), `fitting` (fit and
its callbacks) and `results` (what the run writes when it ends); the run
directory's lock and stored config from `run_directory`; where it trains from
`distribution`. Several seeds: `keras_memblocks.training.seeds`.
"""

from pathlib import Path

import keras

from keras_memblocks.training import distribution
from keras_memblocks.training import fitting
from keras_memblocks.training import plan
from keras_memblocks.training import results as run_results
from keras_memblocks.training import run_directory
from keras_memblocks.training.checkpoints import Diverged
from keras_memblocks.training.checkpoints import FiniteGuard
from keras_memblocks.training.checkpoints import finished_history
from keras_memblocks.training.results import TrainingDivergedError
from keras_memblocks.training.run_directory import RunLock
from keras_memblocks.training.run_directory import check_run_config
from keras_memblocks.utils import extras


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
    run = plan.resolve(config)  # every mistake in the config raised here, before any TF work
    if config.tensorboard:
        extras.require("tensorboard", "tensorboard=True (memblocks train --tensorboard)")
    output_dir = Path(output_dir)
    # First: MultiWorkerMirroredStrategy must exist before TF runs any op.
    strategy = distribution.resolve(strategy, config.strategy)
    if isinstance(strategy, distribution.DataParallelRun):
        strategy.check_batch_size(config.batch_size)
    handshake = distribution.Handshake(strategy)
    if distribution.is_follower(strategy):
        with plan.global_settings(config):
            return _follow(run, seed, strategy, handshake)
    try:
        with RunLock(output_dir):  # one run per directory; a second one stops here
            run_directory.claim(output_dir, config.to_dict())  # never a folder we did not write
            if overwrite:  # whatever this package wrote there, finished or not
                run_directory.clear(output_dir)
            check_run_config(output_dir, config, overwrite)
            finished = run_results.finished_results(output_dir)
            if finished is not None:
                run_results.raise_finished(output_dir, finished)
            handshake.go()
            with plan.global_settings(config):
                return _train(run, output_dir, seed, verbose, strategy, handshake)
    except BaseException:
        handshake.stop()  # the other processes stop too, if this one did before training
        raise


def _train(run, output_dir, seed, verbose, strategy, handshake):
    config = run.config
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = plan.build_model(run)
    (source, validation_data, test_data), steps_per_epoch = plan.load_datasets(run, seed)
    validation_data, test_data = (
        plan.with_aux_targets(d, model) for d in (validation_data, test_data)
    )
    with strategy.scope():
        plan.compile_model(model, run, steps_per_epoch)
    checkpoint_path = output_dir / ("best.keras" if validation_data is not None else "last.keras")
    best = fitting.best_so_far(checkpoint_path, run, steps_per_epoch, validation_data)
    callbacks, backup, timer = fitting.make_callbacks(run, output_dir, checkpoint_path, best)
    if isinstance(strategy, distribution.DataParallelRun):
        local = distribution.local_copy(
            strategy, model, lambda: plan.compiled_model(run, steps_per_epoch)
        )
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
    train_data = plan.with_aux_targets(
        plan.training_stream(run, source, seed, first_epoch, steps_per_epoch), model
    )
    try:
        seconds = fitting.fit(
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
        run_results.record_divergence(config, output_dir, seed, checkpoint_path, diverged)
    history = finished_history(output_dir / "history.csv", config.epochs)
    facts = {
        "epochs_completed": len(history),
        "test": fitting.evaluate_checkpoint(checkpoint_path, run, steps_per_epoch, test_data),
        "seconds": seconds,
        "step_seconds": timer.seconds,
    }
    results = run_results.write_finished(
        output_dir, config, seed, model, strategy, checkpoint_path, facts
    )  # the run is finished here
    backup.remove()
    return results


def _follow(run, seed, strategy, handshake):
    """A data-parallel run's process other than 0: the same model, data and
    steps as process 0 (`_train`), from the epoch and weights process 0
    sends; its share of each batch; no files, no output. Returns `None`."""
    if not handshake.receive_decision():  # the seed already finished
        return None
    config = run.config
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = plan.build_model(run)
    (source, _, _), steps_per_epoch = plan.load_datasets(run, seed)
    with strategy.scope():
        plan.compile_model(model, run, steps_per_epoch)
    first_epoch = handshake.receive_start()
    distribution.share_state(strategy, model)
    train_data = plan.with_aux_targets(
        plan.training_stream(run, source, seed, first_epoch, steps_per_epoch), model
    )
    try:
        fitting.fit(
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
