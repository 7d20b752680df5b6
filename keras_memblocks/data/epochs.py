"""Training data as one epoch after another, each ordered by the seed and its number.

A `tf.data` shuffle with `reshuffle_each_iteration=True` draws each epoch's
order from a generator that starts afresh in every process: a run killed
after epoch k and resumed sees epoch 0's order again, and ends elsewhere
than the run that was never stopped. Here epoch `e` is shuffled with its own
seed, `epoch_seed(seed, e)`, and each example is augmented with a seed made
of that and its place in the epoch, so the batches depend on the run's seed
and `e` alone, and a resumed run trains on exactly the batches it would have.

`Dataset.shuffle` takes its seed as a Python number, not a tensor, so the
epochs are shuffled in Python and concatenated (cheap: no function is traced
per epoch); the augmentation and batching are one `map` and one `batch` over
the whole stream.
"""

import dataclasses
import functools
from typing import Callable

import tensorflow as tf


def epoch_seed(seed, epoch):
    """The shuffle and augmentation seed of epoch `epoch` of a run seeded `seed`.

    Examples:
        >>> from keras_memblocks.data.epochs import epoch_seed
        >>> epoch_seed(0, 3), epoch_seed(1, 0)
        (3, 1000003)
    """
    return int(seed) * 1_000_003 + int(epoch)


@dataclasses.dataclass(frozen=True)
class TrainingSource:
    """A dataset's training split, as the trainer reads it epoch by epoch.

    Attributes:
        examples: the decoded `(image, label)` examples in one fixed order
            (cached where the dataset is small), neither shuffled nor
            augmented.
        prepare: `f(image, label, seed) -> (image, label)`: the augmentation
            (stateless, seeded by the (2,) int64 tensor `seed`) and
            normalisation of one example.
        shuffle_buffer: the shuffle buffer's size.
    """

    examples: tf.data.Dataset
    prepare: Callable
    shuffle_buffer: int


def epoch_stream(source, seed, first_epoch, num_epochs, batch_size, steps_per_epoch=None):
    """Batches of epochs `first_epoch` .. `num_epochs - 1` of `source`, in turn.

    Args:
        source: a `TrainingSource`.
        seed: the run's seed.
        first_epoch: the first epoch to give (a resumed run's); `num_epochs`
            gives an empty stream.
        num_epochs: the run's number of epochs.
        batch_size: examples per batch; each epoch drops its last partial
            batch, so no batch mixes two epochs.
        steps_per_epoch: at most this many batches of each epoch.

    Returns:
        A prefetched `tf.data.Dataset` of `(images, labels)` batches, for
        `model.fit(..., steps_per_epoch=...)`, which keeps one iterator
        across epochs when given `steps_per_epoch`.

    Examples:
        >>> import tensorflow as tf
        >>> from keras_memblocks.data.epochs import TrainingSource, epoch_stream
        >>> numbers = tf.data.Dataset.range(4).map(lambda x: (x, x))
        >>> source = TrainingSource(numbers, lambda x, y, seed: (x, y), shuffle_buffer=4)
        >>> whole = [x.numpy().tolist() for x, _ in epoch_stream(source, 0, 0, 3, 2)]
        >>> resumed = [x.numpy().tolist() for x, _ in epoch_stream(source, 0, 1, 3, 2)]
        >>> len(whole), resumed == whole[2:]  # epochs 1 and 2: the same batches
        (6, True)
    """
    if not 0 <= first_epoch <= num_epochs:
        raise ValueError(
            f"`first_epoch` must be in [0, {num_epochs}]. Received: first_epoch={first_epoch}"
        )
    count = int(source.examples.cardinality())
    if count < 0:
        raise ValueError("The training examples have no known length; give a sized dataset.")
    per_epoch = count // batch_size
    if steps_per_epoch is not None:
        per_epoch = min(per_epoch, steps_per_epoch)

    length = per_epoch * batch_size  # examples each epoch contributes

    def one_epoch(epoch):
        order = source.examples.shuffle(
            source.shuffle_buffer, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False
        )
        return order.take(length)

    # A run killed after its last epoch was backed up resumes with nothing left to train.
    epochs = [one_epoch(epoch) for epoch in range(first_epoch, num_epochs)] or [
        one_epoch(0).take(0)
    ]
    stream = functools.reduce(tf.data.Dataset.concatenate, epochs)

    def prepare(position, example):
        # The example's epoch and place in it, from its place in the stream.
        epoch = first_epoch + position // length
        example_seed = tf.stack([seed * 1_000_003 + epoch, position % length])
        return source.prepare(*example, example_seed)

    stream = stream.enumerate().map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return stream.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(source, batch_size, max_steps=None):
    """The number of whole batches in one epoch of `source`, capped at `max_steps`."""
    steps = int(source.examples.cardinality()) // batch_size
    return steps if not max_steps else min(steps, max_steps)
