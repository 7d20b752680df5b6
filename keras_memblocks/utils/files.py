"""Files the package writes, reads and may remove: atomic writes, ownership, safe paths.

Every file a run writes goes through `atomic_write`, or for Keras' own
writers through `temporary_name` and `commit`: written under a temporary
name in the same folder, flushed to disk and renamed into place, so a kill at any instant leaves the
old file or the new one, never a file cut short.

A folder the package may empty or replace carries a marker it wrote
(`write_marker`); `is_marked` is the proof asked for before anything in it
is removed. No marker, no removal, whatever `--overwrite` says.
"""

import contextlib
import hashlib
import json
import os
import re
import reprlib
import stat
from pathlib import Path

from keras_memblocks.utils.processes import is_alive

PACKAGE = "keras-memblocks"
MARK = f"written by {PACKAGE}"  # in the first lines of a text file the package wrote


def _fsync_folder(folder):
    with contextlib.suppress(OSError):  # not every file system lets a folder be synced
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def temporary_name(path, suffix=""):
    """A name beside `path` that no other process uses: `.<name>.partial-<pid><suffix>`."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial-{os.getpid()}{suffix}")


_PARTIAL = re.compile(r"\..+\.partial-(\d+)(\..*)?")


def remove_stale_partials(folder):
    """Removes the temporary files (`temporary_name`) that killed writers left in
    `folder` when their process was killed (the pid in the name is gone)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        match = _PARTIAL.fullmatch(path.name)
        if match and path.is_file() and not path.is_symlink() and not is_alive(int(match[1])):
            path.unlink(missing_ok=True)


def commit(temporary, path):
    """Flushes `temporary` to disk and renames it to `path` (the atomic step)."""
    with open(temporary, "rb") as file:
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _fsync_folder(Path(path).parent)


def atomic_write(path, data):
    """Writes `data` (str or bytes) to `path` atomically.

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.utils.files import atomic_write
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.json"
        >>> atomic_write(path, '{"accuracy": 0.9}')
        >>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
        ('{"accuracy": 0.9}', ['results.json'])
    """
    path = Path(path)
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as file:
            file.write(data.encode() if isinstance(data, str) else data)
        commit(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def atomic_write_json(path, value):
    """`atomic_write` of `value` as indented JSON."""
    atomic_write(path, json.dumps(value, indent=2, default=list) + "\n")


def sha256(path):
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# === Ownership ===


def write_marker(folder, kind):
    """Marks `folder` as written by this package (`.memblocks-<kind>`)."""
    atomic_write_json(Path(folder) / f".memblocks-{kind}", {"written_by": PACKAGE, "kind": kind})


def is_marked(folder, kind):
    """Whether `folder` carries the marker `write_marker(folder, kind)` wrote.

    Examples:
        >>> import tempfile
        >>> from keras_memblocks.utils.files import is_marked, write_marker
        >>> folder = tempfile.mkdtemp()
        >>> is_marked(folder, "run")
        False
        >>> write_marker(folder, "run")
        >>> is_marked(folder, "run"), is_marked(folder, "export")
        (True, False)
    """
    marker = Path(folder) / f".memblocks-{kind}"
    try:
        if not stat.S_ISREG(os.lstat(marker).st_mode):  # a link could point anywhere
            return False
        with open(marker, "rb") as file:
            content = json.loads(file.read(4096))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and content.get("written_by") == PACKAGE


def protected_reason(folder, holds=()):
    """Why `folder` must never be removed or replaced, or `None`.

    The root, the home directory, the current directory and its ancestors,
    and any folder that holds one of the paths in `holds` (the model being
    exported, say) are protected.

    Examples:
        >>> import os
        >>> from keras_memblocks.utils.files import protected_reason
        >>> protected_reason(".")
        'it is the current directory'
        >>> protected_reason(os.path.expanduser("~"))
        'it is the home directory'
    """
    folder = Path(os.path.abspath(folder)).resolve()
    cwd = Path.cwd().resolve()
    if folder == Path(folder.anchor):
        return "it is the root directory"
    if folder == Path.home().resolve():
        return "it is the home directory"
    if folder == cwd:
        return "it is the current directory"
    if folder in cwd.parents:
        return "it holds the current directory"
    for path in holds:
        path = Path(os.path.abspath(path)).resolve()
        if folder == path or folder in path.parents:
            return f"it holds {path.name}"
    return None


# === Reading what users give ===


def check_regular_file(path, what):
    """Refuses, before anything opens it, a path that is not a regular file: a
    FIFO would block the reader forever, `/dev/zero` would fill memory.

    Returns the path's size in bytes.

    Raises:
        ValueError: missing, a folder, or not a regular file (one line).
    """
    try:
        mode = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"No {what} {str(path)!r}.") from None
    except OSError as error:
        raise ValueError(f"Cannot read the {what} {str(path)!r}: {error.strerror}.") from None
    if stat.S_ISDIR(mode.st_mode):
        raise ValueError(f"{path} is a folder; give the {what} itself.")
    if not stat.S_ISREG(mode.st_mode):
        raise ValueError(
            f"{path} is not a regular file (a pipe, a device or a socket); give the {what} "
            "as a file."
        )
    return mode.st_size


def shorten(value, limit=80):
    """A bounded `repr(value)`: what an error message quotes of a value a user gave,
    however large or deep it is (`reprlib` abbreviates as it goes, in bounded time).

    Examples:
        >>> from keras_memblocks.utils.files import shorten
        >>> shorten("x" * 1000, limit=12)
        "'xxx...xxxx'"
        >>> shorten([[1, 2, 3]] * 1000)
        '[[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], ...]'
    """
    abbreviate = reprlib.Repr()
    abbreviate.maxlevel = 3
    abbreviate.maxstring = abbreviate.maxother = limit
    return abbreviate.repr(value)
