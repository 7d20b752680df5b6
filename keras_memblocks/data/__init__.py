"""Datasets: tf.data pipelines on tensorflow-datasets, the embedded digits, generated data.

The `[data]` extra: TensorFlow (tf.data feeds `model.fit` on every Keras
backend), tensorflow-datasets and scikit-learn (its bundled handwritten
digits); Fashion-MNIST through Keras' own loader.
"""

from keras_memblocks.utils import extras

extras.require("data", "keras_memblocks.data")

from keras_memblocks.data.digits import load_digits
from keras_memblocks.data.fashion_mnist import load_fashion_mnist
from keras_memblocks.data.stand_in import stand_in_data
from keras_memblocks.data.synthetic import synthetic_images
from keras_memblocks.data.synthetic import synthetic_segmentation
from keras_memblocks.data.tfds_datasets import DATASETS
from keras_memblocks.data.tfds_datasets import DatasetNotFoundError
from keras_memblocks.data.tfds_datasets import check_available
from keras_memblocks.data.tfds_datasets import load
from keras_memblocks.data.tfds_datasets import prepare_dataset
from keras_memblocks.data.tfds_datasets import splits
from keras_memblocks.data.tfds_datasets import training_source

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "check_available",
    "load",
    "load_digits",
    "load_fashion_mnist",
    "prepare_dataset",
    "splits",
    "stand_in_data",
    "synthetic_images",
    "synthetic_segmentation",
    "training_source",
]
