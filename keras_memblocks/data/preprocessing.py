"""The papers' preprocessing, as tf.data map functions.

Random ops are stateless and seeded per example (`seed` is a (2,) int
tensor), so a pipeline with a fixed seed yields the same batches every run.
"""

import numpy as np
import tensorflow as tf

# Per-channel statistics used by the papers' PyTorch code.
MEAN_STD = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cityscapes": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# Cityscapes labelIds (0..33) -> the 19 train ids; everything else -> 255.
_CITYSCAPES_TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
CITYSCAPES_LABEL_MAP = np.full(256, 255, dtype="uint8")
for _label_id, _train_id in _CITYSCAPES_TRAIN_IDS.items():
    CITYSCAPES_LABEL_MAP[_label_id] = _train_id
IGNORE_LABEL = 255


def normalize(image, dataset):
    mean, std = MEAN_STD[dataset]
    image = tf.cast(image, tf.float32) / 255.0
    return (image - mean) / std


def cifar_augment(image, seed):
    """Random crop 32 from the image zero-padded by 4, and horizontal flip."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])


def imagenet_train_crop(image, seed, size=224):
    """Random-resized crop (scale 0.08-1, ratio 3/4-4/3) to `size`, and flip."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seeds[0],
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, (size, size), method="bilinear")
    return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])


def imagenet_eval_crop(image, resize=256, size=224):
    """Resize the shorter side to `resize`, then the central `size` crop."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = resize / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(image, new_shape, method="bilinear")
    top = (new_shape[0] - size) // 2
    left = (new_shape[1] - size) // 2
    return tf.image.crop_to_bounding_box(image, top, left, size, size)


def cityscapes_train_ids(label):
    """labelIds -> the 19 train ids, ignore = 255."""
    table = tf.constant(CITYSCAPES_LABEL_MAP)
    return tf.gather(table, tf.cast(label, tf.int32))


def cityscapes_augment(image, label, seed, crop_size=(512, 1024), scale_range=(0.5, 2.0)):
    """Random scale, random crop (padding with ignore) and flip, jointly."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    scale = tf.random.stateless_uniform((), seeds[0], *scale_range)
    shape = tf.cast(tf.cast(tf.shape(image)[:2], tf.float32) * scale, tf.int32)
    image = tf.image.resize(image, shape, method="bilinear")
    label = tf.image.resize(label, shape, method="nearest")
    height = tf.maximum(shape[0], crop_size[0])
    width = tf.maximum(shape[1], crop_size[1])
    image = tf.image.pad_to_bounding_box(image, 0, 0, height, width)
    # Padded label pixels are ignored: shift by one, pad with 0, shift back.
    label = tf.image.pad_to_bounding_box(tf.cast(label, tf.int32) + 1, 0, 0, height, width) - 1
    label = tf.where(label < 0, IGNORE_LABEL, label)
    stacked = tf.concat([image, tf.cast(label, tf.float32)], axis=-1)
    stacked = tf.image.stateless_random_crop(stacked, (*crop_size, 4), seed=seeds[1])
    stacked = tf.image.stateless_random_flip_left_right(stacked, seed=seeds[2])
    return stacked[..., :3], tf.cast(stacked[..., 3:], tf.uint8)
