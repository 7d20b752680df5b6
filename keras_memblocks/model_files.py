"""Loading a `.keras` file, with errors that say what is wrong and what to do.

`keras.saving.load_model` reports a file that exists but is not a zip
archive as "File not found", and a class it cannot find as a `TypeError`
with the whole object config; the `memblocks` commands show users this
module's one-line `ModelFileError` instead.
"""

import json
import re
import zipfile
from pathlib import Path

import keras

from keras_memblocks.utils.files import check_regular_file
from keras_memblocks.utils.files import shorten

# The largest config a model's archive may hold: the package's largest model
# (DeepLabv3 with blocks) has a config.json of 0.2 MB, and Keras reads
# it whole into nested Python objects (a padded 3 MB one took 7.5 GB).
MEMBER_LIMITS = {"config.json": 1_000_000, "metadata.json": 100_000}


class ModelFileError(ValueError):
    """A path that does not hold a Keras model this process can load.

    Its message names the file, what is wrong with it and what to do.

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.model_files import ModelFileError, load_model_file
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.keras"
        >>> _ = path.write_text("not a model")
        >>> try:
        ...     load_model_file(path)
        ... except ModelFileError as error:
        ...     print(str(error).split(":")[0])
        notes.keras is not a Keras model file
    """


def _corrupt(path, reason):
    return ModelFileError(
        f"{path} is a damaged .keras file ({reason}); a copy or download that stopped part "
        "way looks like this. Use the file as `model.save()` or `memblocks train` wrote it."
    )


def load_model_file(path, compile=True):
    """Loads a `.keras` model (or a legacy `.h5` one) like `keras.saving.load_model`.

    Args:
        path: the model file.
        compile: restore the optimizer, loss and metrics too.

    Returns:
        The `keras.Model`.

    Raises:
        ModelFileError: the file is missing, a folder, not a Keras model,
            damaged, or holds a class of another package that is not
            imported. Other errors (bugs) pass through unchanged.

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.model_files import load_model_file
        >>> from keras_memblocks.models import vgg_like
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.keras"
        >>> vgg_like("mnist", width=1, blocks={"block": "cc", "after": "conv"}).save(path)
        >>> load_model_file(path).name
        'vgg_like_mnist_w1_cc'
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a folder; give the .keras file itself (an exported SavedModel "
            "folder cannot be loaded back as a Keras model)."
        )
    try:  # a FIFO would block the reader forever, /dev/zero would fill memory
        check_regular_file(path, "model file")
    except ValueError as error:
        raise ModelFileError(str(error)) from None
    if path.suffix == ".h5":
        try:
            return keras.saving.load_model(path, compile=compile)
        except (OSError, ValueError) as error:  # not HDF5, or HDF5 without a model
            raise ModelFileError(
                f"{path.name} is not a Keras model file ({error}). Give the .keras file that "
                "`model.save()` or `memblocks train` wrote."
            ) from None
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path.name} is not a Keras model file: a .keras file is a zip archive, and this "
            "one is not (a file cut short in a copy looks like this too). Give the "
            ".keras file that `model.save()` or `memblocks train` wrote."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            sizes = {info.filename: info.file_size for info in archive.infolist()}
            names = set(sizes)
            for name, limit in MEMBER_LIMITS.items():
                if sizes.get(name, 0) > limit:
                    raise ModelFileError(
                        f"{path.name}'s {name} is {sizes[name]:,} bytes, more than the "
                        f"{limit:,} a model's {name} needs: not a file `model.save()` wrote; "
                        "it is not loaded."
                    )
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise _corrupt(path, error) from None
    if damaged is not None:
        raise _corrupt(path, f"{damaged} fails its checksum")
    if "config.json" not in names:
        raise ModelFileError(
            f"{path.name} is a zip archive but not a Keras model file (it has no config.json). "
            "Give the .keras file that `model.save()` or `memblocks train` wrote."
        )
    try:
        return keras.saving.load_model(path, compile=compile)
    except TypeError as error:
        unsafe = re.search(r"'module': '(os|posix|nt|subprocess|builtins|sys)'", str(error))
        if unsafe is not None:
            raise ModelFileError(
                f"{path.name} refers to a function of Python's {unsafe[1]!r} module, which a "
                "model never needs and which could run commands: it is not loaded. Do not use "
                "this file."
            ) from None
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", str(error))
        if missing is None:
            raise
        # Keras appends the missing object's own config: its registered
        # name ("package>Class") says which package it needs.
        own_config = str(error).partition("Full object config:")[2]
        registered = re.search(r"'registered_name': '([^']+)'", own_config)
        module = re.search(r"'module': '([^']+)'", own_config)
        name = registered[1] if registered else missing[1]
        origin = f" (module {module[1]})" if module else ""
        raise ModelFileError(
            f"{path.name} holds {name!r}{origin}, which is not registered in this "
            "process: it comes from another package. Load the model in Python after "
            "importing that package, then call keras_memblocks.export.export_model on it."
        ) from None
    except json.JSONDecodeError as error:  # (a ValueError) its config.json is not JSON
        raise _corrupt(path, f"its config.json is not valid JSON: {error}") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise _corrupt(path, f"{type(error).__name__}: {shorten(str(error))}") from None
    except (ValueError, AttributeError, IndexError) as error:  # a config.json that is JSON,
        # but not a model's: Keras meets it as one of these while rebuilding the model
        raise _corrupt(path, f"{type(error).__name__}: {shorten(str(error))}") from None
