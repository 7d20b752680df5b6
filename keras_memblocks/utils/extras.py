"""The package's extras, and the one error raised where one is missing.

`pip install keras-memblocks` installs the layers and the model builders
(Keras and NumPy), on whichever backend the user already has, as Keras
itself does. Everything else is an extra, named for what it lets a user do
(`pyproject.toml` lists the same names and packages; `tests/test_packaging.py`
keeps the two equal):

| extra | what it adds |
|---|---|
| `tensorflow` | the TensorFlow backend |
| `data` | tf.data pipelines, tensorflow-datasets, the embedded digits |
| `train` | the trainer and `memblocks train / reproduce` (`data` + YAML configs) |
| `export` | SavedModel / TFLite / ONNX export and their runtimes |
| `analysis` | the papers' analyses and figures |
| `hub` | `insert_blocks` on keras-hub models |
| `tensorboard` | `memblocks train --tensorboard` |
| `all` | all of the above |

Each module built on an extra calls `require` before importing it, so its
absence is one line naming the install command, never a traceback from
deep inside an import.
"""

import importlib.util

DISTRIBUTION = "keras-memblocks"

# extra -> {distribution: the module it installs}. Nested extras (`train`
# includes `data`) list their packages in full, so a check names all of
# what is missing.
_TENSORFLOW = {"tensorflow": "tensorflow"}
_DATA = {
    **_TENSORFLOW,
    "tensorflow-datasets": "tensorflow_datasets",
    "protobuf": "google.protobuf",
    "scikit-learn": "sklearn",
}
EXTRAS = {
    "tensorflow": _TENSORFLOW,
    "data": _DATA,
    "train": {**_DATA, "pyyaml": "yaml"},
    "export": {
        **_TENSORFLOW,
        "tf2onnx": "tf2onnx",
        "onnxruntime": "onnxruntime",
        "ai-edge-litert": "ai_edge_litert",
    },
    "analysis": {"scipy": "scipy", "matplotlib": "matplotlib"},
    "hub": {"keras-hub": "keras_hub"},
    "tensorboard": {"tensorboard": "tensorboard"},
}


class MissingExtraError(ImportError):
    """A part of the package was used whose extra is not installed.

    The message is one line that names the `pip install` to run.

    Attributes:
        extra: the extra's name, e.g. `"export"`.
        missing: the distributions it needs that are not installed.
    """

    def __init__(self, message, extra, missing):
        super().__init__(message)
        self.extra = extra
        self.missing = tuple(missing)


def install_command(*names):
    """The `pip install` line that adds the extras `names`.

    Examples:
        >>> from keras_memblocks.utils import extras
        >>> print(extras.install_command("train", "export"))
        pip install "keras-memblocks[train,export]"
    """
    return f'pip install "{DISTRIBUTION}[{",".join(names)}]"'


def missing_packages(extra):
    """The distributions of `extra` that this environment lacks.

    Examples:
        >>> from keras_memblocks.utils import extras
        >>> extras.missing_packages("analysis")  # SciPy and Matplotlib installed
        []
    """
    if extra not in EXTRAS:
        raise ValueError(f"Unknown extra {extra!r}. Valid values: {', '.join(EXTRAS)}.")
    return [name for name, module in EXTRAS[extra].items() if not _installed(module)]


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent is missing (google.protobuf)
        return False
    except ValueError:  # a module in sys.modules without a spec (a test's stand-in)
        return True


def require(extra, feature):
    """Raises `MissingExtraError` unless every package of `extra` is installed.

    Args:
        extra: an extra's name (a key of `EXTRAS`), or a tuple of them.
        feature: what needs it, as the user would name it
            (`"keras_memblocks.export"`, `"memblocks train"`).

    Examples:
        >>> from keras_memblocks.utils import extras
        >>> extras.require("export", "keras_memblocks.export")  # silent when installed
        >>> extras.require(("train", "export"), "memblocks demo")
    """
    names = (extra,) if isinstance(extra, str) else tuple(extra)
    lacking = {name: missing_packages(name) for name in names}
    lacking = {name: packages for name, packages in lacking.items() if packages}
    if lacking:
        packages = list(dict.fromkeys(p for missing in lacking.values() for p in missing))
        noun = "extra" if len(lacking) == 1 else "extras"
        raise MissingExtraError(
            f"{feature} needs the [{','.join(lacking)}] {noun} ({', '.join(packages)} not "
            f"installed): {install_command(*lacking)}",
            ",".join(lacking),
            packages,
        )
