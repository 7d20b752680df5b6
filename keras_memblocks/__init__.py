"""keras-memblocks: Squeeze-and-Remember and Contextual Convolution blocks.

Importing the package registers everything it can put into a `.keras` file
(its layers and its optimizer) for deserialization, so a model trained by
`memblocks train` loads in a new process after `import keras_memblocks`.
"""

import os as _os
import sys as _sys

# The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.7.0"

__all__ = ["layers", "models", "optimizers", "__version__"]

# The `memblocks` command imports what each subcommand needs once it has read
# its arguments (keras_memblocks/cli.py, its choices from keras_memblocks.registry),
# so that `memblocks --help` needs no Keras, which imports TensorFlow where it is
# installed (seconds). Every other import of the package registers its layers and
# optimizer at once: Keras finds a custom layer of a `.keras` file only in its
# registry, filled by importing the layer's module (it imports modules by name for
# its own packages alone), so `import keras_memblocks` must do it.
_BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax[cpu]", "torch": "torch"}


def _import_keras():
    """Keras, or one line naming the backend whose package is missing."""
    try:
        import keras  # noqa: F401
    except ModuleNotFoundError as error:
        if error.name not in _BACKEND_PACKAGES:
            raise
        raise ImportError(
            f"Keras' backend is {error.name!r} (KERAS_BACKEND, or Keras' default), but "
            f'{error.name} is not installed: pip install "{_BACKEND_PACKAGES[error.name]}", '
            "or set KERAS_BACKEND=jax, torch or tensorflow to a backend you have."
        ) from None


if _os.path.basename(_sys.argv[0]) != "memblocks":
    _import_keras()
    from keras_memblocks import layers
    from keras_memblocks import models
    from keras_memblocks import optimizers
