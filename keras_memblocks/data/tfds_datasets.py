"""tf.data pipelines on tensorflow-datasets with the papers' preprocessing.

Nothing here downloads during training: a dataset that is not prepared in
`data_dir` fails at once with `DatasetNotFoundError`, which says what to put
where. `prepare_dataset` downloads (on a machine with internet access) or
builds from manual downloads.
"""

import os
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_datasets as tfds

from keras_memblocks.data import epochs
from keras_memblocks.data import preprocessing
from keras_memblocks.utils import argument_checks


@dataclass(frozen=True)
class TfdsDataset:
    """Where a tensorflow-datasets dataset lives and what it holds."""

    tfds_name: str
    num_classes: int
    image_shape: tuple
    test_split: str
    manual_files: tuple = ()


DATASETS = {
    "mnist": TfdsDataset("mnist", 10, (28, 28, 1), "test"),
    "cifar10": TfdsDataset("cifar10", 10, (32, 32, 3), "test"),
    "cifar100": TfdsDataset("cifar100", 100, (32, 32, 3), "test"),
    "imagenet2012": TfdsDataset(
        "imagenet2012",
        1000,
        (224, 224, 3),
        "validation",
        ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
    ),
    "cityscapes": TfdsDataset(
        "cityscapes/semantic_segmentation",
        19,
        (1024, 2048, 3),
        "validation",
        ("leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip"),
    ),
}
"""Name -> `TfdsDataset` of the tensorflow-datasets datasets `load` and the trainer read."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not prepared where the pipeline looked for it.

    A `FileNotFoundError`; its message names the dataset, the data_dir and
    what to put where.

    Examples:
        >>> import tempfile
        >>> from keras_memblocks.data import DatasetNotFoundError, load
        >>> try:
        ...     load("mnist", "train", data_dir=tempfile.mkdtemp())
        ... except DatasetNotFoundError as error:
        ...     print(isinstance(error, FileNotFoundError), "'mnist'" in str(error))
        True True
    """


def default_data_dir():
    return os.environ.get(
        "TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    )


def _builder(name, data_dir):

    argument_checks.check_choice("dataset", name, tuple(DATASETS))
    # try_gcs=False: never reach for Google Cloud Storage (offline machines
    # would stall on it instead of failing).
    return tfds.builder(DATASETS[name].tfds_name, data_dir=data_dir, try_gcs=False)


def check_available(name, data_dir=None):
    """Returns the tfds builder of a prepared dataset, or raises at once.

    Raises `DatasetNotFoundError` (in well under a second, before any
    training starts) saying where the files must go.

    Examples:
        >>> import tempfile
        >>> from keras_memblocks.data import DatasetNotFoundError, check_available
        >>> try:
        ...     check_available("cifar10", data_dir=tempfile.mkdtemp())
        ... except DatasetNotFoundError as error:
        ...     print("prepare_dataset('cifar10'" in str(error))
        True
    """
    data_dir = data_dir or default_data_dir()
    builder = _builder(name, data_dir)
    if builder.is_prepared():
        return builder
    spec = DATASETS[name]
    if spec.manual_files:
        manual_dir = os.path.join(data_dir, "downloads", "manual")
        how = (
            f"It is a manual download: put {', '.join(spec.manual_files)} in {manual_dir}, "
            f"then run keras_memblocks.data.prepare_dataset({name!r}, {data_dir!r})."
        )
    else:
        how = (
            f"On a machine with internet access run keras_memblocks.data.prepare_dataset("
            f"{name!r}, {data_dir!r}), or copy a prepared '{spec.tfds_name}' tfds folder there."
        )
    raise DatasetNotFoundError(
        f"Dataset {name!r} (tensorflow-datasets '{spec.tfds_name}') is not prepared in "
        f"data_dir={data_dir!r} (looked in {builder.data_dir}). {how} "
        "The embedded dataset 'digits' needs nothing."
    )


def prepare_dataset(name, data_dir=None):
    """Downloads and prepares a dataset (needs internet or manual files).

    ImageNet and Cityscapes are manual downloads: their archives go into
    `<data_dir>/downloads/manual/` first (`check_available` names them).

    Examples:
        With `stand_in_data`, which stands in for the download:

        >>> import tempfile
        >>> from keras_memblocks.data import prepare_dataset, stand_in_data
        >>> with stand_in_data():
        ...     prepare_dataset("mnist", data_dir=tempfile.mkdtemp()).is_prepared()
        True
    """

    data_dir = data_dir or default_data_dir()
    builder = _builder(name, data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=os.path.join(data_dir, "downloads", "manual")
        )
    )
    return builder


def splits(name, validation_fraction=0.1, reverse=False):
    """Split names: `{"train", "validation", "test"}` (validation may be None).

    `validation_fraction` of the training split is held out (the SR paper:
    90/10, best-on-validation model tested). `reverse=True` is the CC
    paper's swap: train on the test split, test on the training split.

    Examples:
        >>> from keras_memblocks.data import splits
        >>> splits("cifar10")
        {'train': 'train[:90%]', 'validation': 'train[90%:]', 'test': 'test'}
        >>> splits("cifar100", reverse=True)
        {'train': 'test', 'validation': None, 'test': 'train'}
    """
    spec = DATASETS[name]
    if reverse:
        return {"train": spec.test_split, "validation": None, "test": "train"}
    if not validation_fraction:
        return {"train": "train", "validation": None, "test": spec.test_split}
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"`validation_fraction` must be in [0, 1). Received: {validation_fraction!r}"
        )
    cut = round(100 * (1 - validation_fraction))
    return {"train": f"train[:{cut}%]", "validation": f"train[{cut}%:]", "test": spec.test_split}


def load(
    name,
    split,
    batch_size=128,
    training=False,
    seed=0,
    data_dir=None,
    crop_size=(512, 1024),
    drop_remainder=None,
):
    """A batched, prefetched `tf.data.Dataset` of `(image, label)`.

    CIFAR: pad-4 random crop + flip in training, per-channel normalisation.
    MNIST: normalisation. ImageNet: random-resized crop 224 + flip / resize
    256 + centre crop 224. Cityscapes: labelIds -> 19 train ids (ignore 255),
    random scale 0.5-2 + crop + flip in training, resized to `crop_size` for
    evaluation (the paper's multi-scale + flip testing is not implemented). Small datasets are
    cached
    (decoded, before augmentation). With a fixed `seed`, the same batches
    come out every run.

    Examples:
        With generated stand-in data:

        >>> from keras_memblocks.data import load, stand_in_data
        >>> with stand_in_data(num_examples=8):
        ...     images, labels = next(iter(load("cifar10", "train", batch_size=4, training=True)))
        >>> tuple(images.shape), tuple(labels.shape)
        ((4, 32, 32, 3), (4,))
    """

    dataset = _read(name, split, training, seed, data_dir, reshuffle_files=True)
    if training:
        dataset = dataset.shuffle(_shuffle_buffer(name), seed=seed, reshuffle_each_iteration=True)
    if drop_remainder is None:
        drop_remainder = training
    return _prepared(dataset, name, training, seed, crop_size, batch_size, drop_remainder).prefetch(
        tf.data.AUTOTUNE
    )


def training_source(name, split, seed=0, data_dir=None, crop_size=(512, 1024)):
    """The training split as the trainer reads it: a `TrainingSource`.

    The examples, decoded and read in one seeded order (cached for the small
    datasets), and the per-example augmentation `load(..., training=True)`
    applies; `keras_memblocks.data.epochs.epoch_stream` shuffles and seeds
    each epoch from them, so a resumed run trains on the batches an
    uninterrupted one would.

    Examples:
        With generated stand-in data:

        >>> from keras_memblocks.data import stand_in_data, training_source
        >>> from keras_memblocks.data.epochs import epoch_stream
        >>> with stand_in_data(num_examples=8):
        ...     source = training_source("cifar10", "train")
        ...     batches = list(epoch_stream(source, seed=0, first_epoch=0, num_epochs=2,
        ...                                 batch_size=4))
        >>> len(batches), tuple(batches[0][0].shape)
        (4, (4, 32, 32, 3))
    """
    examples = _read(name, split, True, seed, data_dir, reshuffle_files=False)

    def prepare(image, label, example_seed):
        return _prepare_example(name, True, crop_size, image, label, example_seed)

    return epochs.TrainingSource(examples, prepare, _shuffle_buffer(name))


def _shuffle_buffer(name):
    return 10_000 if name != "cityscapes" else 100


def _read(name, split, training, seed, data_dir, reshuffle_files):
    """The split's `(image, label)` examples, decoded (cached for the small datasets)."""
    builder = check_available(name, data_dir)
    dataset = builder.as_dataset(
        split=split,
        shuffle_files=training,
        read_config=tfds.ReadConfig(
            shuffle_seed=seed,
            shuffle_reshuffle_each_iteration=reshuffle_files if training else None,
        ),
    )
    if name == "cityscapes":
        dataset = dataset.map(
            lambda ex: (
                ex["image_left"],
                preprocessing.cityscapes_train_ids(ex["segmentation_label"]),
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        dataset = dataset.map(
            lambda ex: (ex["image"], ex["label"]), num_parallel_calls=tf.data.AUTOTUNE
        )
    if name in ("mnist", "cifar10", "cifar100"):
        dataset = dataset.cache()  # decoded uint8, before random augmentation
    return dataset


def _prepared(dataset, name, training, seed, crop_size, batch_size, drop_remainder):
    """Augmented (seeded per example) and normalised batches."""
    dataset = dataset.enumerate().map(
        _preprocess_fn(name, training, seed, crop_size),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.batch(batch_size, drop_remainder=drop_remainder)


def _preprocess_fn(name, training, seed, crop_size):
    def fn(index, example):
        image, label = example
        example_seed = tf.stack([tf.cast(seed, tf.int64), index])
        return _prepare_example(name, training, crop_size, image, label, example_seed)

    return fn


def _prepare_example(name, training, crop_size, image, label, example_seed):
    """One example augmented (training; seeded by the (2,) `example_seed`) and normalised."""
    if name == "cityscapes":
        if training:
            image, label = preprocessing.cityscapes_augment(image, label, example_seed, crop_size)
        else:
            # Models with SR are tied to one input size: evaluate at the
            # crop size (1024x2048 frames and 512x1024 crops share 1:2).
            image = tf.image.resize(image, crop_size, method="bilinear")
            label = tf.image.resize(label, crop_size, method="nearest")
        return preprocessing.normalize(image, name), tf.cast(label[..., 0], tf.int32)
    if name == "imagenet2012":
        image = (
            preprocessing.imagenet_train_crop(image, example_seed)
            if training
            else preprocessing.imagenet_eval_crop(image)
        )
    elif training and name in ("cifar10", "cifar100"):
        image = preprocessing.cifar_augment(image, example_seed)
    return preprocessing.normalize(image, name), tf.cast(label, tf.int32)
