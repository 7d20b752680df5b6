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
    if not path.exists():
        raise ModelFileError(f"No model file {str(path)!r}.")
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a folder; give the .keras file itself (an exported SavedModel "
            "folder cannot be loaded back as a Keras model)."
        )
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
            names = set(archive.namelist())
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
        raise _corrupt(path, f"{type(error).__name__}: {error}") from None
