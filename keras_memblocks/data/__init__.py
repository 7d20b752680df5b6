"""Datasets: tensorflow-datasets pipelines, the embedded digits, generated data."""

from keras_memblocks.data.digits import load_digits
from keras_memblocks.data.synthetic import synthetic_images
from keras_memblocks.data.synthetic import synthetic_segmentation
from keras_memblocks.data.tfds_datasets import DATASETS
from keras_memblocks.data.tfds_datasets import DatasetNotFoundError
from keras_memblocks.data.tfds_datasets import check_available
from keras_memblocks.data.tfds_datasets import load
from keras_memblocks.data.tfds_datasets import prepare_dataset
from keras_memblocks.data.tfds_datasets import splits
from keras_memblocks.data.tfds_datasets import stand_in_data

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
