"""Which parts of the package need TensorFlow, and the error where it is missing.

The layers, models, optimizers and analysis are written in `keras.ops` and run
on every Keras backend (TensorFlow, JAX, PyTorch) with no TensorFlow installed.
The parts built on TensorFlow's own tools import it when used: the tf.data
pipelines (`keras_memblocks.data`'s tensorflow-datasets loaders), the trainer
(`keras_memblocks.training`, which feeds `model.fit` from tf.data on any
backend) and the export to SavedModel / TFLite / ONNX (`keras_memblocks.export`).

The default install (`pip install keras-memblocks`) brings all of it. An
install beside Keras + JAX or Keras + PyTorch uses `pip install --no-deps`
(see the README), and then those parts raise `MissingTensorFlowError`, which
names the packages to add.
"""

import importlib.metadata
import importlib.util
import re

# What each TensorFlow-built part imports: distribution name -> module name.
DATA = {"tensorflow": "tensorflow", "tensorflow-datasets": "tensorflow_datasets"}
EXPORT = {
    "tensorflow": "tensorflow",
    "tf2onnx": "tf2onnx",
    "onnxruntime": "onnxruntime",
    "ai-edge-litert": "ai_edge_litert",
}


class MissingTensorFlowError(ImportError):
    """A TensorFlow-built part of the package was used where TensorFlow is not installed."""


def requirement(distribution):
    """The package's own pin for `distribution` (e.g. `tensorflow==2.21.*`)."""
    try:
        requirements = importlib.metadata.requires("keras-memblocks") or []
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        requirements = []
    for line in requirements:
        if ";" in line:  # an extra's requirement, not the default install's
            continue
        name = re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0]
        if name.lower().replace("_", "-") == distribution:
            return line.replace(" ", "")
    return distribution


def require(feature, modules):
    """Raises `MissingTensorFlowError` unless every one of `modules` is installed.

    Args:
        feature: what needs them, as the user would name it
            (`"keras_memblocks.export"`).
        modules: `{distribution name: module name}`, e.g. `EXPORT`.

    Example (silent where the default install is in place):

    >>> from keras_memblocks import tensorflow_stack
    >>> tensorflow_stack.require("keras_memblocks.export", tensorflow_stack.EXPORT)
    >>> tensorflow_stack.requirement("tensorflow")
    'tensorflow==2.21.*'
    """
    missing = [name for name, module in modules.items() if importlib.util.find_spec(module) is None]
    if missing:
        install = " ".join(f"'{requirement(name)}'" for name in missing)
        raise MissingTensorFlowError(
            f"{feature} is built on TensorFlow's tools and needs {', '.join(missing)}, which "
            f"this environment does not have (an install with --no-deps leaves them out): "
            f"pip install {install}"
        )
