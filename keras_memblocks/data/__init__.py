"""Datasets: tensorflow-datasets pipelines, the embedded digits, generated data.

The digits and the generated data are NumPy arrays and need no TensorFlow;
the tensorflow-datasets pipelines import it when first used.
"""

from keras_memblocks.data.digits import load_digits
from keras_memblocks.data.synthetic import synthetic_images
from keras_memblocks.data.synthetic import synthetic_segmentation

_TFDS_NAMES = (
    "DATASETS",
    "DatasetNotFoundError",
    "check_available",
    "load",
    "prepare_dataset",
    "splits",
)


def __getattr__(name):
    # Without TensorFlow, these modules raise MissingTensorFlowError themselves.
    if name in _TFDS_NAMES:
        from keras_memblocks.data import tfds_datasets

        return getattr(tfds_datasets, name)
    if name == "stand_in_data":
        from keras_memblocks.data.stand_in import stand_in_data

        return stand_in_data
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "check_available",
    "load",
    "load_digits",
    "prepare_dataset",
    "splits",
    "stand_in_data",
    "synthetic_images",
    "synthetic_segmentation",
]
