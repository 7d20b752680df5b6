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
import socket
from pathlib import Path

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


class RunLock:
    """Holds `<output_dir>/run.lock` (pid and host) while a run trains there.

    Re-entering from the process that holds it is an error too: a directory
    is one run. The lock goes when the block exits, however it exits.
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
        holder = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(2):  # the second try follows the removal of a stale lock
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._remove_if_stale():
                    break
                continue
            except OSError as error:
                raise _unusable(self.path.parent, error) from None
            with os.fdopen(descriptor, "w") as file:
                file.write(holder + "\n")
            self._owned = True
            return self
        pid, host = self._holder()
        who = f"pid {pid} on {host}" if pid is not None else f"see {self.path}"
        raise RunLockedError(
            f"{self.path.parent} is in use by another run ({who}); wait for it "
            "to finish, or train into another output directory."
        )

    def _holder(self):
        try:
            pid, host = self.path.read_text().split()
            return int(pid), host
        except (OSError, ValueError):  # being written, or not ours
            return None, None

    def _remove_if_stale(self):
        pid, host = self._holder()
        if pid is None or host != socket.gethostname() or is_alive(pid):
            return False
        try:
            self.path.unlink()  # the run that held it was killed
        except FileNotFoundError:
            pass  # another process took it over first; the retry decides
        return True

    def __exit__(self, *exc_info):
        if self._owned:
            self.path.unlink(missing_ok=True)
            self._owned = False
        return False


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


def check_config(output_dir, config_dict, overwrite):
    """Stores `config_dict` as the directory's config, or refuses another one.

    A directory without a stored config (new, or a run killed before 0.2.0
    wrote one) takes this one; a finished run of before 0.2.0 is compared
    with the config in its `results.json`. With `overwrite`, this config
    replaces the stored one.

    Raises:
        ConfigChangedError: the stored config differs (names the fields).
    """
    path = Path(output_dir) / CONFIG_FILE
    wanted = json.loads(json.dumps(config_dict, default=list))  # as it reads back
    stored = _stored_config(output_dir)
    if stored is not _NONE and not overwrite:
        if stored != wanted:
            fields = sorted(
                key
                for key in set(stored or {}) | set(wanted)
                if (stored or {}).get(key) != wanted.get(key)
            )
            raise ConfigChangedError(
                f"{output_dir} holds a run of another config (differs in: "
                f"{', '.join(fields) or 'unreadable config.json'}); pass --overwrite "
                "(overwrite=True) to train this one there instead, or choose another "
                "output directory."
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.partial")
    temporary.write_text(json.dumps(wanted, indent=2) + "\n")
    os.replace(temporary, path)
