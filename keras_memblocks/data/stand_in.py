"""Generated stand-in data for the tensorflow-datasets pipelines (testing).

For tests, docs and `memblocks train --stand-in-data`: the real pipelines
run on tensorflow-datasets' generated examples, so a recipe can be checked
on a machine without its data.
"""

import contextlib

from keras_memblocks.utils import compat


@contextlib.contextmanager
def stand_in_data(num_examples=8):
    """Runs the real pipelines on generated data of each dataset's shape.

    tensorflow-datasets' `mock_data` (random examples that match the real
    features), plus every dataset counted as prepared. For tests, docs and
    quick checks of a pipeline on a machine without the data.

    Examples:
        >>> from keras_memblocks.data import load, stand_in_data
        >>> with stand_in_data():
        ...     images, labels = next(iter(load("cifar10", "test", batch_size=4)))
        >>> tuple(images.shape), tuple(labels.shape)
        ((4, 32, 32, 3), (4,))
    """
    with compat.tfds_generated_examples(num_examples):
        yield
