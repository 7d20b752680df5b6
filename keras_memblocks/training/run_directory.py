"""A run's output directory: one run at a time, its config kept beside it.

Nothing in Keras locks a directory, and two processes training into one
interleave `history.csv` and ruin the run for good. `RunLock` makes the
second one stop at once with one line naming the first one's pid; a lock
left by a killed run (its process is gone) is taken over.

A run also writes the config it trains (`config.json`) before its first
step, so that a re-run with another config is refused instead of resuming
(or reporting) the old run under the new config's name.
"""

import json
import os
import shlex
import shutil
import socket
from pathlib import Path

from keras_memblocks.utils.files import MARK
from keras_memblocks.utils.files import PACKAGE
from keras_memblocks.utils.files import atomic_write_json
from keras_memblocks.utils.files import is_marked
from keras_memblocks.utils.files import remove_stale_partials
from keras_memblocks.utils.files import write_marker
from keras_memblocks.utils.processes import is_alive

LOCK_FILE = "run.lock"
CONFIG_FILE = "config.json"


class RunLockedError(ValueError):
    """Another live process is training into the same output directory.

    Examples:
        >>> import os, tempfile
        >>> from keras_memblocks.training.run_directory import RunLock, RunLockedError
        >>> run = tempfile.mkdtemp()
        >>> with RunLock(run):
        ...     try:
        ...         RunLock(run).__enter__()
        ...     except RunLockedError as error:
        ...         print(f"pid {os.getpid()}" in str(error))
        True
    """


class ConfigChangedError(ValueError):
    """The output directory holds a run of another config.

    Examples:
        >>> import tempfile
        >>> from keras_memblocks.training.run_directory import ConfigChangedError, check_config
        >>> run = tempfile.mkdtemp()
        >>> check_config(run, {"epochs": 3}, overwrite=False)
        >>> try:
        ...     check_config(run, {"epochs": 5}, overwrite=False)
        ... except ConfigChangedError as error:
        ...     print("epochs" in str(error))
        True
    """


class RunDirectoryError(ValueError):
    """The output directory cannot be made or written (a file in its place, no permission).

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.training.run_directory import RunDirectoryError, RunLock
        >>> a_file = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> _ = a_file.write_text("")
        >>> try:
        ...     RunLock(a_file / "run").__enter__()
        ... except RunDirectoryError as error:
        ...     print(str(error).split(";")[0].endswith("is a file, not a directory"))
        True
    """


def _unusable(directory, error):
    directory = Path(directory)
    blocker = next(
        (p for p in [directory, *directory.parents] if p.exists() and not p.is_dir()), None
    )
    if blocker is not None:
        reason = f"{blocker} is a file, not a directory"
    else:
        reason = f"{error.strerror or error}"
    return RunDirectoryError(
        f"Cannot train into {directory}: {reason}; choose an output directory you can write "
        "(--output-dir)."
    )


def _process_start(pid):
    """When process `pid` started (clock ticks since boot, from /proc), or `None`
    where that cannot be read: tells a live holder from a new process that
    was given a dead holder's pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _holder_line():
    start = _process_start(os.getpid())
    return f"{os.getpid()} {socket.gethostname()} {start if start is not None else '-'}\n"


class RunLock:
    """Holds `<output_dir>/run.lock` (pid, host and the process' start time) while
    a run trains there.

    The lock file appears with its content in one step (written under a
    temporary name, then hard-linked into place), so no reader sees it empty.
    A lock whose process is gone, or whose pid now belongs to a process that
    started later, is stale and taken over; one that cannot be read, or that
    names another host, is explained in one line with the command that
    clears it. Re-entering from the process that holds it is an error too: a
    directory is one run. The lock goes when the block exits, however it exits.
    """

    def __init__(self, output_dir):
        self.path = Path(output_dir) / LOCK_FILE
        self._owned = False

    def __enter__(self):
        # Taking the lock is also the check that the directory can be written,
        # before any data is read: Keras' callbacks would fail late, inside fit.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _unusable(self.path.parent, error) from None
        for _ in range(2):  # the second try follows the removal of a stale lock
            try:
                self._create()
            except FileExistsError:
                if not self._remove_if_stale():
                    break
                continue
            except OSError as error:
                raise _unusable(self.path.parent, error) from None
            self._owned = True
            return self
        raise self._held_error()

    def _create(self):
        temporary = self.path.with_name(f".{LOCK_FILE}.{os.getpid()}")
        line = _holder_line()
        try:
            temporary.write_text(line)
            try:
                os.link(temporary, self.path)  # fails if the lock exists: the atomic step
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: create exclusively, then write
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                with os.fdopen(descriptor, "w") as file:
                    file.write(line)
        finally:
            temporary.unlink(missing_ok=True)

    def _holder(self):
        """`(pid, host, start)` of the lock's holder, or `None` if it cannot be read."""
        try:
            words = self.path.read_text().split()
            pid, host = int(words[0]), words[1]
            start = int(words[2]) if len(words) > 2 and words[2] != "-" else None
            return pid, host, start
        except (OSError, ValueError, IndexError, UnicodeDecodeError):
            return None

    def _remove_if_stale(self):
        holder = self._holder()
        if holder is None or holder[1] != socket.gethostname():
            return False
        pid, _, start = holder
        alive = is_alive(pid) and (start is None or _process_start(pid) in (None, start))
        if alive:
            return False
        try:
            self.path.unlink()  # the run that held it was killed
        except FileNotFoundError:
            pass  # another process took it over first; the retry decides
        return True

    def _held_error(self):
        holder = self._holder()
        clear = f"rm {shlex.quote(str(self.path.resolve()))}"
        if holder is None:
            return RunLockedError(
                f"{self.path} cannot be read (empty or damaged: a disk that filled up while "
                f"it was written leaves it so); if no run is training into {self.path.parent}, "
                f"clear it with `{clear}` and run the same command again."
            )
        pid, host, _ = holder
        if host != socket.gethostname():
            return RunLockedError(
                f"{self.path.parent} is locked by pid {pid} on another machine, {host}; if no "
                f"run is training there, clear it with `{clear}` and run the same command again."
            )
        return RunLockedError(
            f"{self.path.parent} is in use by another run (pid {pid} on {host}); wait for it "
            "to finish, or train into another output directory."
        )

    def __exit__(self, *exc_info):
        if self._owned:
            self.path.unlink(missing_ok=True)
            self._owned = False
        return False


MARKER_KIND = "run"
# What a run writes into its output directory (`overwrite` removes these, and only
# in a directory that carries the run marker).
RUN_FILES = (
    "best.keras",
    "best.json",
    "last.keras",
    "last.json",
    "history.csv",
    "results.json",
    "config.json",
    "backup",
    "tensorboard",
)


class ForeignFilesError(ValueError):
    """The output directory holds files of the names a run writes that this
    package did not write; nothing is trained there, nothing is removed.

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.training.run_directory import ForeignFilesError, claim
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (run / "history.csv").write_text("my own notes")
        >>> try:
        ...     claim(run, {"epochs": 3})
        ... except ForeignFilesError as error:
        ...     print("history.csv" in str(error))
        True
    """


def claim(output_dir, config_dict):
    """Makes sure `output_dir` is this package's run directory before anything is
    written or removed there, and marks it so.

    A directory with the run marker is ours. One without it is taken when it
    holds none of `RUN_FILES`, or when its `config.json` is this very config
    (a run begun by a version before the marker existed); otherwise
    `ForeignFilesError`.
    """
    output_dir = Path(output_dir)
    if is_marked(output_dir, MARKER_KIND):
        for folder in (output_dir, output_dir / "backup"):  # what killed runs left half-written
            remove_stale_partials(folder)
        return
    present = sorted(name for name in RUN_FILES if os.path.lexists(output_dir / name))
    stored = _stored_config(output_dir)
    wanted = json.loads(json.dumps(config_dict, default=list))
    if present and stored != wanted:
        raise ForeignFilesError(
            f"{output_dir} holds {', '.join(present)}, which memblocks did not write there "
            "(the folder has no .memblocks-run marker); nothing was changed. Choose another "
            "output directory (--output-dir)."
        )
    write_marker(output_dir, MARKER_KIND)


def check_ours(path, legacy_starts=()):
    """Refuses to go on if `path` exists and this package did not write it.

    Ours: its first 256 bytes carry `keras_memblocks.utils.files.MARK`
    (a JSON file's `"written_by"` field, a Markdown comment), or start as
    one of `legacy_starts` (what an older version wrote without a mark).

    Raises:
        ForeignFilesError: naming the file.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(256).decode("utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there (a folder that cannot be made is the run lock's to explain)
    except OSError as error:
        raise ForeignFilesError(f"Cannot read {path}: {error.strerror}.") from None
    ours = MARK in head or f'"written_by": "{PACKAGE}"' in head
    if not (ours or head.startswith(tuple(legacy_starts))):
        raise ForeignFilesError(
            f"{path} exists and memblocks did not write it; nothing was trained or changed. "
            "Choose another output directory (--output-dir), or move the file."
        )


def clear(output_dir):
    """Removes the run files of a directory `claim` accepted (links are removed
    as links: what they point to is never touched)."""
    output_dir = Path(output_dir)
    if not is_marked(output_dir, MARKER_KIND):
        raise ForeignFilesError(f"{output_dir} is not a memblocks run directory; nothing removed.")
    for name in RUN_FILES:
        path = output_dir / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)


_NONE = object()  # no config stored: the directory takes the one given


def _stored_config(output_dir):
    """The config a directory's run was trained with: its `config.json`, or for a run
    finished before 0.2.0 wrote one, the copy in its `results.json`."""
    for name, read in ((CONFIG_FILE, lambda d: d), ("results.json", lambda d: d.get("config"))):
        path = Path(output_dir) / name
        if path.exists():
            try:
                stored = read(json.loads(path.read_text()))
            except (OSError, ValueError, AttributeError):
                return None  # unreadable: differs from any config
            if stored is not None:
                return stored
    return _NONE


def _as_read_back(config_dict):
    """`config_dict` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config_dict, default=list))


def check_config(output_dir, config_dict, overwrite, defaults=None, ignored=()):
    """Stores `config_dict` as the directory's config, or refuses another one.

    A directory without a stored config (new, or a run killed before 0.2.0
    wrote one) takes this one; a finished run of before 0.2.0 is compared
    with the config in its `results.json`. With `overwrite`, this config
    replaces the stored one. A field the stored config lacks (one a later
    version added) counts as its value in `defaults`, so a run stored before
    the field existed is the same config as long as the field keeps its default.
    The fields in `ignored` (those the run's dataset does not read) are not
    compared.

    Raises:
        ConfigChangedError: the stored config differs (names the fields).
    """
    path = Path(output_dir) / CONFIG_FILE
    wanted = _as_read_back(config_dict)
    stored = _stored_config(output_dir)
    if isinstance(stored, dict) and defaults:
        stored = {**_as_read_back(defaults), **stored}
    if stored is not _NONE and not overwrite:
        compared = {key: value for key, value in wanted.items() if key not in ignored}
        if isinstance(stored, dict):
            stored = {key: value for key, value in stored.items() if key not in ignored}
        if stored != compared:
            fields = sorted(
                key
                for key in set(stored or {}) | set(compared)
                if (stored or {}).get(key) != compared.get(key)
            )
            raise ConfigChangedError(
                f"{output_dir} holds a run of another config (differs in: "
                f"{', '.join(fields) or 'unreadable config.json'}); pass --overwrite "
                "(overwrite=True) to train this one there instead, or choose another "
                "output directory."
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, wanted)


def check_run_config(output_dir, config, overwrite=False):
    """`check_config` of a `TrainingConfig`: its fields' defaults fill what an
    older stored config lacks, and the fields its dataset does not read are not
    compared (the one call `train` and `train_seeds` both make)."""
    check_config(
        output_dir,
        config.to_dict(),
        overwrite,
        defaults=config.defaults(),
        ignored=config.unread_fields(),
    )
