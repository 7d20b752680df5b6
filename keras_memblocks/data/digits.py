"""The embedded dataset: scikit-learn's handwritten digits.

1,797 real 8x8 grey-level digits (0..16) shipped inside scikit-learn, so the
main job and the accuracy smoke checks run offline.
"""

import numpy as np
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split

from keras_memblocks.utils import argument_checks


def load_digits(image_size=32, channels=3, test_fraction=0.25, seed=0):
    """Digits resized (nearest, then zero-padded) to `image_size`, in [0, 1].

    Args:
        image_size: int >= 8, side of the returned images. The 8x8 digit is
            enlarged by the largest integer factor that fits, then centred
            with zero padding.
        channels: 1, or 3 (the grey image repeated) for RGB networks.
        test_fraction: share of the examples held out, stratified by class.
        seed: the split's seed; the same seed always gives the same split.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: float32 images
        (N, image_size, image_size, channels) and int32 labels.

    Examples:
        >>> from keras_memblocks.data import load_digits
        >>> (x_train, y_train), (x_test, y_test) = load_digits(16, channels=1)
        >>> x_train.shape, x_test.shape
        ((1347, 16, 16, 1), (450, 16, 16, 1))
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"`image_size` must be an integer >= 8. Received: {image_size!r}")
    argument_checks.check_choice("channels", channels, (1, 3))
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1). Received: {test_fraction!r}")
    digits = sklearn_digits()
    images = digits.images.astype("float32") / 16.0  # (N, 8, 8) in [0, 1]
    factor = image_size // 8
    images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    pad = image_size - 8 * factor
    images = np.pad(images, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
    images = np.repeat(images[..., None], channels, axis=-1)
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target.astype("int32"),
        test_size=test_fraction,
        random_state=seed,
        stratify=digits.target,
    )
    return (x_train, y_train), (x_test, y_test)
