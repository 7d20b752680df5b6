"""What a run writes when it ends, in one place: its `results.json`, finished or
diverged, and the errors that report a run already ended."""

import json
from pathlib import Path

import keras
import numpy as np

from keras_memblocks import models
from keras_memblocks.training.checkpoints import best_state
from keras_memblocks.utils.files import atomic_write_json


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


def raise_finished(output_dir, results):
    """Raises the error that reports the ended run in `output_dir` (`results`: its
    `results.json`): `TrainingDivergedError` or `FinishedRunError`."""
    if results.get("status") == "diverged":
        raise TrainingDivergedError(results["diverged"]["message"])
    raise FinishedRunError(
        f"The run in {output_dir} already finished: its results are in "
        f"{output_dir / 'results.json'}. Pass overwrite=True (memblocks train "
        "--overwrite) to train it again, or choose another output directory."
    )


def write_finished(output_dir, config, seed, model, strategy, checkpoint_path, facts):
    """Writes the finished run's `results.json` (the run counts as finished from
    here) and returns it. `facts`: `epochs_completed`, `test` (metrics),
    `seconds` (of training this session), `step_seconds` (each step's)."""
    step_seconds = facts["step_seconds"]
    results = {
        "seed": seed,
        "epochs_completed": facts["epochs_completed"],
        "test": facts["test"],
        "parameters": int(model.count_params()),
        "trainable_parameters": models.count_trainable_parameters(model),
        "train_seconds_this_session": round(facts["seconds"], 2),
        "replicas": int(strategy.num_replicas_in_sync),
        "processes": int(getattr(strategy, "num_processes", 1)),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "jit_compile": bool(model.jit_compile),  # what `config.jit_compile` resolved to
        # The first steps trace and compile; the median ignores them.
        "median_step_ms": round(1e3 * float(np.median(step_seconds)), 3) if step_seconds else None,
        "model_path": str(checkpoint_path),
        "config": config.to_dict(),
    }
    atomic_write_json(Path(output_dir) / "results.json", results)
    return results


def record_divergence(config, output_dir, seed, checkpoint_path, diverged):
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
