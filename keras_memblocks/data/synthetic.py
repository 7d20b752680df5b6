"""Generated data for tests and benchmarks."""

import numpy as np


def synthetic_images(num_examples, image_shape, num_classes, seed=0, dtype="uint8"):
    """Random images and labels of a given shape (uint8 like real datasets).

    Examples:
        >>> from keras_memblocks.data import synthetic_images
        >>> images, labels = synthetic_images(4, (32, 32, 3), 10)
        >>> images.shape, images.dtype.name, labels.shape
        ((4, 32, 32, 3), 'uint8', (4,))
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_examples, *image_shape)).astype(dtype)
    labels = rng.integers(0, num_classes, num_examples).astype("int64")
    return images, labels


def synthetic_segmentation(num_examples, image_shape, num_label_ids=34, seed=0):
    """Random images and Cityscapes-style labelId maps (0..33).

    Examples:
        >>> from keras_memblocks.data import synthetic_segmentation
        >>> images, labels = synthetic_segmentation(2, (16, 32, 3))
        >>> images.shape, labels.shape, int(labels.max()) <= 33
        ((2, 16, 32, 3), (2, 16, 32, 1), True)
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_examples, *image_shape)).astype("uint8")
    labels = rng.integers(0, num_label_ids, (num_examples, *image_shape[:2], 1)).astype("uint8")
    return images, labels
