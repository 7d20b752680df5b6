"""Every private API of Keras and of the converters the package relies on, in one place.

Each is something a public API does not offer (said per name below). When one
of these libraries changes it, `tests/test_compat.py` fails on that name,
on whichever version is installed (`make test` and `make test-compat` run it on
the newest and the oldest TensorFlow of the supported range), instead of a
user's `insert_blocks` or export failing somewhere deeper.

Nothing here is public API of keras-memblocks.
"""

import contextlib
import os

import keras

# Keras exports no name for a functional model. `insert_blocks` and the
# keras-hub tasks need to tell one from a subclassed model (only a functional
# graph can be rewired by `keras.models.clone_model`), and to rebuild a
# functional subclass from its config.
from keras.src.models.functional import Functional  # noqa: F401
from keras.src.models.functional import functional_from_config  # noqa: F401


def producing_layer_name(tensor):
    """The name of the layer whose output `tensor` (a symbolic Keras tensor) is.

    Keras keeps this only in the tensor's private `_keras_history`; the public
    graph walk (`model.get_layer(...).output`) goes the other way.
    """
    return tensor._keras_history.operation.name


def is_functional(model):
    """Whether `model` is a functional model (`keras.Model(inputs, outputs)` or a
    subclass of it), not a `keras.Sequential` and not a subclassed model."""
    return isinstance(model, Functional) and not isinstance(model, keras.Sequential)


def litert_ops(interpreter):
    """`[{"op_name": ..., ...}]` of a LiteRT interpreter's nodes, delegated pieces
    included: the interpreter's `_get_ops_details()`, which LiteRT has no
    public spelling of (its `get_tensor_details` lists tensors, not ops)."""
    return interpreter._get_ops_details()


@contextlib.contextmanager
def tf2onnx_without_graph_copies():
    """tf2onnx with its optimizer's per-pass graph copies turned off.

    tf2onnx deep-copies the whole graph, weights included, before each
    optimizer pass so that a failing pass can be skipped, and the copies pile
    up (see the export guide). Its only switch is the environment variable
    `TF2ONNX_CATCH_ERRORS`, read at conversion time (and any value turns the
    copies off in tf2onnx 1.17); no argument of `from_function` sets it. The
    variable is set for the conversion and restored after it.
    """
    name = "TF2ONNX_CATCH_ERRORS"
    before = os.environ.get(name)
    os.environ[name] = "FALSE"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def tfds_generated_examples(num_examples):
    """tensorflow-datasets' own `mock_data` (examples generated from each
    dataset's feature spec), with every dataset counted as prepared.

    `mock_data` replaces what a builder reads, not `is_prepared()`, which the
    package's pipelines ask first so that missing data fails in one line
    before any work (`keras_memblocks.data.check_available`); tensorflow-datasets
    has no public switch for it, so it is patched while the context lasts.
    """
    from unittest import mock

    import tensorflow_datasets as tfds

    with (
        tfds.testing.mock_data(num_examples=num_examples),
        mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True),
    ):
        yield
