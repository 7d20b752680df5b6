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


@contextlib.contextmanager
def staging_folder(out_dir):
    """A fresh staging folder for `out_dir`, removed on exit however the block ends.

    Raises:
        ValueError: `out_dir`'s parent cannot be made or written.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out_dir.parent)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=out_dir.parent)
        )
    except OSError as error:
        raise _unusable(out_dir, error) from None
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish(staging, out_dir):
    """Moves the passed `staging` folder to `out_dir`, replacing what was there."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    aside = out_dir.with_name(f".{out_dir.name}.replaced-{os.getpid()}-{secrets.token_hex(4)}")
    os.replace(out_dir, aside)
    os.replace(staging, out_dir)
    shutil.rmtree(aside, ignore_errors=True)
