"""What a run writes at the end of every epoch, so that a kill at any instant resumes.

At the end of an epoch the callbacks run in this order, each file written
atomically (`keras_memblocks.utils.files`):

1. `HistoryFile` rewrites `history.csv` with the epoch's row;
2. `FiniteGuard` stops a diverged run before anything below sees its epoch;
3. `BestCheckpoint` (or `LastCheckpoint`) saves the model;
4. `EpochBackup` saves weights and optimizer as `backup/epoch-<N>.weights.h5`:
   the rename of that one file is the moment the epoch counts as done.

A kill before step 4 repeats the epoch on resume. Each epoch's data and
randomness depend only on the seed and the epoch's number, so the repeated
epoch is the same epoch: it rewrites the same history row, and its
validation value equals the best one `best.json` already records, so the
best model is not saved again. The best model and its value can never
disagree: `best.json` names the SHA-256 of the model it describes, and of
the one before, and is written between saving the new model under a
temporary name and renaming it into place; `best_state` reads back the
state that matches the file on disk.
"""

import contextlib
import csv
import errno
import gc
import io
import json
import math
import os
import re
import sys
from pathlib import Path

import keras
import numpy as np

from keras_memblocks.utils import files

BACKUP_PATTERN = re.compile(r"epoch-(\d+)\.weights\.h5")


class RunFileError(ValueError):
    """A file of a run cannot be used to resume it (damaged, or not the run's).

    Its message names the file, what is wrong and what to do.

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.training.checkpoints import HistoryFile, RunFileError
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "history.csv"
        >>> _ = path.write_bytes(b"\\xff\\xfe not a table")
        >>> try:
        ...     HistoryFile(path).read()
        ... except RunFileError as error:
        ...     print(str(error).split(" (")[0].endswith("history.csv is damaged"))
        True
    """


def _damaged(path, reason):
    return RunFileError(
        f"{path} is damaged ({reason}); put back a good copy, or pass --overwrite "
        "(overwrite=True) to train the run afresh."
    )


@contextlib.contextmanager
def _disk_full_contained(path):
    """Turns a full disk met while Keras writes `path` into one `OSError(ENOSPC)`.

    h5py leaves the file it was writing open inside the failed call's frames;
    freed later, each of its objects prints a traceback of its own. They are
    freed here, quietly, so that the user sees the one error.
    """
    # h5py prints those tracebacks while the failed write unwinds, before any
    # handler here runs: what the write prints is held back until it is known to be that.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            yield
    except Exception as error:
        text = f"{error} {error.__cause__ or ''}"
        if getattr(error, "errno", None) not in (errno.ENOSPC, errno.EDQUOT) and not (
            "No space left on device" in text or "Disk quota exceeded" in text
        ):
            sys.stderr.write(printed.getvalue())
            raise
        error.__traceback__ = None
        error.__context__ = error.__cause__ = None
        del error
        with contextlib.redirect_stderr(io.StringIO()):
            gc.collect()
        raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
    sys.stderr.write(printed.getvalue())


class Diverged(Exception):
    """Raised inside `fit` by `FiniteGuard`; the trainer records it."""

    def __init__(self, epoch, reason):
        super().__init__(reason)
        self.epoch, self.reason = epoch, reason


class FiniteGuard(keras.callbacks.Callback):
    """Stops training at the end of the first epoch whose loss, or any of
    whose weights, is NaN or inf: a diverged run is not trained on to its
    last epoch, and the callbacks after this one (the checkpoint, the
    backup) never see that epoch."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise Diverged(epoch + 1, f"the training loss is {float(loss)}")
        for weight in self.model.weights:
            values = keras.ops.convert_to_numpy(weight)
            if not np.isfinite(values).all():
                count = int(np.size(values) - np.isfinite(values).sum())
                raise Diverged(epoch + 1, f"{count} values of {weight.path} are NaN or inf")


class HistoryFile(keras.callbacks.Callback):
    """`history.csv`, one row per epoch (0-based `epoch`, as Keras' `CSVLogger`),
    rewritten whole and atomically at the end of every epoch; a repeated epoch
    replaces its row."""

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)
        self.rows = None

    def read(self):
        """The rows already written, `{epoch: row}`."""
        if not self.path.exists():
            return {}
        try:
            text = self.path.read_bytes().decode("utf-8")
            rows = list(csv.DictReader(io.StringIO(text)))
            return {int(row["epoch"]): row for row in rows}
        except (UnicodeDecodeError, KeyError, TypeError, ValueError, csv.Error) as error:
            raise _damaged(self.path, f"{type(error).__name__}: {files.shorten(str(error))}")

    def on_train_begin(self, logs=None):
        self.rows = self.read()

    def on_epoch_end(self, epoch, logs=None):
        self.rows[epoch] = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        self.write(self.path, self.rows)

    @staticmethod
    def write(path, rows):
        ordered = [rows[epoch] for epoch in sorted(rows)]
        fields = list(dict.fromkeys(key for row in ordered for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(ordered)
        files.atomic_write(path, text.getvalue())


def finished_history(path, epochs_done):
    """The rows of `history.csv` for the epochs that counted as done."""
    rows = HistoryFile(path).read()
    return [rows[epoch] for epoch in sorted(rows) if epoch < epochs_done]


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the model of the best epoch on `monitor` in `filepath` (`best.keras`),
    with its value in `best.json` beside it.

    Keras' `ModelCheckpoint` starts its best value afresh in every process
    and writes the model in place; this one starts from `best_state` and
    writes as the module docstring says. `best` is the value to beat
    (`None`: anything finite is better).
    """

    def __init__(self, filepath, monitor, mode, best=None):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max'. Received: {mode!r}")
        self.filepath, self.monitor, self.mode = Path(filepath), monitor, mode
        self.state_path = self.filepath.with_suffix(".json")
        self.best = best

    def _better(self, value):
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(
                f"The best checkpoint monitors {self.monitor!r}, which the epoch's logs do "
                f"not hold (they hold {sorted(logs or {})})."
            )
        if not self._better(float(value)):
            return
        state = {"best": float(value), "epoch": epoch + 1}
        save(self.model, self.filepath, state)
        self.best = float(value)


def save(model, filepath, state):
    """Saves `model` to `filepath` with `state` in `<filepath>.json`, in the order
    that lets `best_state` tell which of the two a kill left on disk."""
    filepath = Path(filepath)
    state_path = filepath.with_suffix(".json")
    temporary = files.temporary_name(filepath, suffix=filepath.suffix)
    try:
        with _disk_full_contained(filepath):
            model.save(temporary)
        state = {**state, "sha256": files.sha256(temporary)}
        previous = best_state(filepath)  # what the file on disk is, kept until it is replaced
        previous = previous if isinstance(previous, dict) else None
        files.atomic_write_json(state_path, {**state, "previous": previous})
        files.commit(temporary, filepath)
    finally:
        if temporary.exists():
            temporary.unlink()


def _read_json(path):
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


UNKNOWN = "unknown"  # the model file is there, but no state describes it


def best_state(filepath):
    """The state (`{"best", "epoch", "sha256"}`) of the model at `filepath`, `None`
    when there is no model, or `UNKNOWN` when the model has no trustworthy
    value (its `best.json` is missing, damaged, or describes another file):
    the caller then measures it again.

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.training.checkpoints import best_state
        >>> best_state(pathlib.Path(tempfile.mkdtemp()) / "best.keras") is None
        True
    """
    filepath = Path(filepath)
    if not filepath.exists():
        return None
    digest = files.sha256(filepath)
    state = _read_json(filepath.with_suffix(".json")) or {}
    for candidate in (state, state.get("previous") or {}):
        if candidate.get("sha256") == digest and isinstance(candidate.get("best"), (int, float)):
            return {key: candidate.get(key) for key in ("best", "epoch", "sha256")}
    return UNKNOWN


class LastCheckpoint(keras.callbacks.Callback):
    """Saves the model at the end of every epoch (`last.keras`), atomically."""

    def __init__(self, filepath):
        super().__init__()
        self.filepath = Path(filepath)

    def on_epoch_end(self, epoch, logs=None):
        save(self.model, self.filepath, {"best": None, "epoch": epoch + 1})


class EpochBackup(keras.callbacks.Callback):
    """The resume point: weights and optimizer state after each epoch, as
    `<folder>/epoch-<N>.weights.h5` (N epochs done), written atomically; the
    older ones go once it is in place.

    Replaces Keras' `BackupAndRestore`, which writes its weights and then,
    separately, the epoch number: a kill between the two resumed the next
    epoch's weights at the previous epoch.

    `keep=2` keeps the one before the newest as well: the workers of a
    multi-worker run each write their own, a kill can leave one worker a
    backup ahead of another, and they resume from the epoch all of them hold
    (`distribution.agreed_epoch`).
    """

    def __init__(self, folder, keep=1):
        super().__init__()
        self.folder = Path(folder)
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"epoch-{epoch + 1:04d}.weights.h5"
        temporary = files.temporary_name(path, suffix=".weights.h5")
        try:
            with _disk_full_contained(path):
                self.model.save_weights(temporary)
            files.commit(temporary, path)
        finally:
            if temporary.exists():
                temporary.unlink()
        for old in self.folder.iterdir():
            match = BACKUP_PATTERN.fullmatch(old.name)
            if match and int(match[1]) < epoch + 2 - self.keep:
                old.unlink()

    def _backups(self):
        """`[(epochs done, path)]`, oldest first."""
        backups = sorted(
            (int(m[1]), p)
            for p in (self.folder.iterdir() if self.folder.is_dir() else ())
            if (m := BACKUP_PATTERN.fullmatch(p.name))
        )
        legacy = self.folder / "latest.weights.h5", self.folder / "training_metadata.json"
        if not backups and all(p.exists() for p in legacy):  # Keras' BackupAndRestore, 0.2
            metadata = _read_json(legacy[1])
            if metadata is None or not isinstance(metadata.get("epoch"), int):
                raise _damaged(legacy[1], "not the JSON Keras' BackupAndRestore writes")
            backups = [(metadata["epoch"], legacy[0])]
        return backups

    def latest(self):
        """The number of epochs the newest backup holds (0: none)."""
        backups = self._backups()
        return backups[-1][0] if backups else 0

    def restore(self, model, epoch=None):
        """Loads the latest backup (or the one of `epoch` epochs) into the compiled
        `model`; returns the number of epochs it holds (0: nothing to resume)."""
        backups = self._backups()
        if epoch is not None:
            if epoch == 0:
                return 0
            backups = [(e, path) for e, path in backups if e == epoch]
            if not backups:
                raise RunFileError(
                    f"{self.folder} holds no backup of epoch {epoch}, where the other "
                    "workers resume; pass --overwrite (overwrite=True) to train the run afresh."
                )
        if not backups:
            return 0
        epoch, path = backups[-1]
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(path)
        except Exception as error:  # h5py and Keras raise many kinds for one damaged file
            raise _damaged(path, f"{type(error).__name__}: {files.shorten(str(error))}") from None
        return epoch

    def remove(self):
        """Removes the backups (once the run's results are written)."""
        if not self.folder.is_dir() or self.folder.is_symlink():
            return
        for path in self.folder.iterdir():
            if BACKUP_PATTERN.fullmatch(path.name) or path.name.startswith(".epoch-"):
                path.unlink()
        for name in ("latest.weights.h5", "training_metadata.json"):  # Keras' (0.2)
            (self.folder / name).unlink(missing_ok=True)
            (self.folder / f"{name}.bkp").unlink(missing_ok=True)
        try:
            os.rmdir(self.folder)
        except OSError:
            pass  # something that is not ours is in it: it stays
