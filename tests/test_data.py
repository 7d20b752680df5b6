import time

import numpy as np
import pytest
import tensorflow as tf

from keras_memblocks.data import DatasetNotFoundError
from keras_memblocks.data import load
from keras_memblocks.data import load_digits
from keras_memblocks.data import preprocessing
from keras_memblocks.data import splits
from keras_memblocks.data import stand_in_data
from keras_memblocks.data import synthetic_images

pytestmark = pytest.mark.oldest_tensorflow


def test_digits_shapes_range_and_fixed_split():
    (x_train, y_train), (x_test, y_test) = load_digits(32, channels=3)
    assert x_train.shape == (1347, 32, 32, 3) and x_test.shape == (450, 32, 32, 3)
    assert x_train.dtype == np.float32 and 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert set(np.unique(y_train)) == set(range(10))
    np.testing.assert_array_equal(load_digits(32)[1][1], y_test)  # same split every time
    # 8x8 enlarged x4 fills 32x32 exactly; x2 + 1 pixel of padding for 17.
    x17 = load_digits(17, channels=1)[0][0]
    assert x17.shape[1:] == (17, 17, 1) and np.all(x17[:, -1] == 0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(image_size=4), "image_size"),
        (dict(channels=2), "channels"),
        (dict(test_fraction=1.0), "test_fraction"),
    ],
)
def test_digits_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_digits(**kwargs)


def test_splits():
    assert splits("cifar100") == {
        "train": "train[:90%]",
        "validation": "train[90%:]",
        "test": "test",
    }
    assert splits("cifar10", reverse=True) == {"train": "test", "validation": None, "test": "train"}
    assert splits("imagenet2012", validation_fraction=0)["test"] == "validation"
    with pytest.raises(ValueError, match="validation_fraction"):
        splits("mnist", validation_fraction=1.5)
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'"):
        load("svhn", "train")


@pytest.mark.parametrize(
    "name,needle",
    [
        ("cifar100", "prepare_dataset('cifar100'"),
        ("imagenet2012", "ILSVRC2012_img_train.tar"),
        ("cityscapes", "gtFine_trainvaltest.zip"),
    ],
)
def test_missing_dataset_fails_fast_with_instructions(name, needle, tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetNotFoundError) as error:
        load(name, "train", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert name in message and str(tmp_path) in message and needle in message
    if name != "cifar100":
        assert str(tmp_path / "downloads" / "manual") in message


def batches(name, training, seed=0, **kwargs):
    with stand_in_data(num_examples=6):
        dataset = load(name, "train", batch_size=3, training=training, seed=seed, **kwargs)
        return [tuple(t.numpy() for t in batch) for batch in dataset]


def test_cifar_pipeline_shapes_normalisation_and_determinism():
    first = batches("cifar100", training=True, seed=1)
    again = batches("cifar100", training=True, seed=1)
    other = batches("cifar100", training=True, seed=2)
    assert len(first) == 2 and first[0][0].shape == (3, 32, 32, 3) and first[0][1].dtype == np.int32
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a[0], b[0])
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    evaluation = batches("cifar100", training=False)
    assert abs(float(np.mean(np.concatenate([b[0] for b in evaluation])))) < 1.5


def test_cifar_augment_is_a_shifted_window_possibly_flipped():
    image = synthetic_images(1, (32, 32, 3), 10)[0][0]
    out = preprocessing.cifar_augment(tf.constant(image), tf.constant([3, 4], tf.int64)).numpy()
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    windows = [padded[dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
    assert any(np.array_equal(out, w) or np.array_equal(out, w[:, ::-1]) for w in windows)


def test_mnist_and_imagenet_pipelines():
    assert batches("mnist", training=False)[0][0].shape == (3, 28, 28, 1)
    assert batches("imagenet2012", training=True)[0][0].shape == (3, 224, 224, 3)
    assert batches("imagenet2012", training=False)[0][0].shape == (3, 224, 224, 3)


def test_cityscapes_pipeline_maps_labels():
    images, labels = batches("cityscapes", training=True, crop_size=(64, 128))[0]
    assert images.shape == (3, 64, 128, 3) and labels.shape == (3, 64, 128)
    assert set(np.unique(labels)) <= set(range(19)) | {255}
    table = preprocessing.CITYSCAPES_LABEL_MAP
    assert (table[7], table[26], table[33], table[0], table[34]) == (0, 13, 18, 255, 255)
    assert sorted(set(table) - {255}) == list(range(19))
