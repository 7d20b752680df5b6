"""Where an export is written until it has passed: a hidden folder beside its output.

`export_model` converts and checks every file inside a staging folder,
`.<name>.partial-<pid>-<random>`, next to the output folder `<name>`, and
moves it into place only once all of them passed, so a failed or killed
export never leaves a half-written output. An output being replaced is
first moved aside (`.<name>.replaced-<pid>-<random>`) and removed only
once the new one is in place.

A killed export leaves its staging folder (a whole SavedModel, often)
behind: the next export into the same parent removes those whose process
is gone, and puts back an output that was moved aside but never replaced.
"""

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

from keras_memblocks.utils.processes import is_alive

_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>partial|replaced)-(?P<pid>\d+)-[^.]+")


def _unusable(out_dir, error):
    out_dir = Path(out_dir)
    blocker = next(
        (p for p in [out_dir.parent, *out_dir.parent.parents] if p.exists() and not p.is_dir()),
        None,
    )
    reason = f"{blocker} is a file, not a directory" if blocker else (error.strerror or str(error))
    return ValueError(
        f"Cannot export into {out_dir}: {reason}; choose an output folder you can write "
        "(--output-dir)."
    )


def remove_leftovers(parent):
    """Cleans up after killed exports into `parent`; returns the paths it removed.

    Their staging folders go; an output moved aside and never replaced
    (killed between the two renames) is put back.

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.export.staging import remove_leftovers
        >>> parent = pathlib.Path(tempfile.mkdtemp())
        >>> (parent / ".export.partial-999999999-abc").mkdir()  # no such process
        >>> [path.name for path in remove_leftovers(parent)]
        ['.export.partial-999999999-abc']
    """
    removed = []
    for path in sorted(Path(parent).glob(".*-*")):
        match = _LEFTOVER.fullmatch(path.name)
        if match is None or not path.is_dir() or is_alive(int(match["pid"])):
            continue
        output = path.with_name(match["name"])
        if match["kind"] == "replaced" and not output.exists():
            os.replace(path, output)  # the old output: nothing took its place
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class ExportInProgressError(ValueError):
    """Another live export is writing the same output folder."""


@contextlib.contextmanager
def staging_folder(out_dir):
    """A fresh staging folder for `out_dir`, removed on exit however the block ends.

    While it exists, `out_dir` is locked: `.<name>.export-lock` beside it
    holds this process' pid, so a second export into the same folder stops
    at once (one line naming the first) instead of replacing its output.

    Raises:
        ValueError: `out_dir`'s parent cannot be made or written.
        ExportInProgressError: another live export holds `out_dir`.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out_dir.parent)
    except OSError as error:
        raise _unusable(out_dir, error) from None
    lock = out_dir.with_name(f".{out_dir.name}.export-lock")
    _take(lock, out_dir)
    try:
        try:
            staging = Path(
                tempfile.mkdtemp(
                    prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=out_dir.parent
                )
            )
        except OSError as error:
            raise _unusable(out_dir, error) from None
        try:
            yield staging
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    finally:
        lock.unlink(missing_ok=True)


def _take(lock, out_dir):
    for _ in range(2):  # the second try follows the removal of a stale lock
        temporary = lock.with_name(f"{lock.name}.{os.getpid()}")
        try:
            temporary.write_text(f"{os.getpid()}\n")
            os.link(temporary, lock)  # fails if the lock exists: the atomic step
            return
        except FileExistsError:
            try:
                pid = int(lock.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None
            if pid is not None and not is_alive(pid):
                lock.unlink(missing_ok=True)  # its export was killed
                continue
            raise ExportInProgressError(
                f"{out_dir} is being written by another export (pid {pid}); wait for it to "
                f"finish, or export into another folder."
            ) from None
        except OSError as error:
            raise _unusable(out_dir, error) from None
        finally:
            temporary.unlink(missing_ok=True)
    raise ExportInProgressError(f"{out_dir} is being written by another export; try again.")


def _follow_umask(staging):
    """Gives the staging folder the mode `mkdir` would have (mkdtemp makes it
    0700 whatever the umask; what it holds was written with the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)


def publish(staging, out_dir, is_earlier_export):
    """Moves the passed `staging` folder to `out_dir`, replacing what was there:
    nothing, an empty folder, or an earlier export (`is_earlier_export(out_dir)`);
    anything else is refused (it may have appeared while the export ran)."""
    out_dir = Path(out_dir)
    _follow_umask(staging)
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    if any(out_dir.iterdir()) and not is_earlier_export(out_dir):
        raise ValueError(
            f"{out_dir} was filled by something else while the export ran; it is left as it "
            "is and nothing was exported. Give a new folder."
        )
    aside = out_dir.with_name(f".{out_dir.name}.replaced-{os.getpid()}-{secrets.token_hex(4)}")
    os.replace(out_dir, aside)
    os.replace(staging, out_dir)
    shutil.rmtree(aside, ignore_errors=True)
