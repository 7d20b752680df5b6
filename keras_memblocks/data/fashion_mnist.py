"""Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017), read by Keras' own loader, offline.

60,000 training and 10,000 test images, 28x28 grey, 10 classes of clothing:
a harder drop-in for MNIST, so the CC paper's MNIST net applies unchanged.
`keras.datasets.fashion_mnist.load_data()` reads the four IDX files from
`$KERAS_HOME/datasets/fashion-mnist/` and downloads them only when they are
missing there. Before calling it, this module copies them from Debian's
`dataset-fashion-mnist` package when that is installed, so that a machine
without internet gets the same files; with neither, the error names both
ways in one line instead of a long network stall.

Keras' loader is used rather than tensorflow-datasets' `fashion_mnist`
builder: the builder has no way to read these IDX files without first
contacting its download host, and Keras' loader needs no extra package.
"""

import os
import shutil
import socket
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_memblocks.data.tfds_datasets import DatasetNotFoundError

FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's `dataset-fashion-mnist` package puts the four IDX files."""
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""The label names, in label order."""
# A download that cannot reach its host fails after this many seconds, not minutes.
DOWNLOAD_TIMEOUT_SECONDS = 20


def keras_cache_dir():
    """The folder Keras' loader reads: `$KERAS_HOME/datasets/fashion-mnist` (as Keras
    resolves it, `/tmp/.keras` when the home folder cannot be written). Keras reads
    `KERAS_HOME` once, when it is imported: set it before.

    Examples:
        >>> from keras_memblocks.data.fashion_mnist import keras_cache_dir
        >>> keras_cache_dir().name
        'fashion-mnist'
    """
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    if not os.access(home, os.W_OK) and os.path.exists(home):
        home = os.path.join(tempfile.gettempdir(), ".keras")
    return Path(home) / "datasets" / "fashion-mnist"


def _missing(folder):
    return [name for name in FILES if not (folder / name).is_file()]


def provide_files(source=DEBIAN_DIR):
    """Copies the IDX files from `source` into Keras' cache where they are missing.

    Each file is copied to a temporary name and renamed into place, so an
    interrupted copy never leaves a file cut short for Keras to read.
    Returns the names it copied.
    """
    target = keras_cache_dir()
    missing = _missing(target)
    if not missing or _missing(Path(source)):
        return []
    target.mkdir(parents=True, exist_ok=True)
    for name in missing:
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=target)
        os.close(handle)
        try:
            shutil.copyfile(Path(source) / name, temporary)
            os.replace(temporary, target / name)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return missing


def _not_found(reason):
    return DatasetNotFoundError(
        f"Fashion-MNIST is not on this machine and Keras could not download it ({reason}). "
        "Either install Debian's package (`sudo apt-get install dataset-fashion-mnist`; its "
        f"files in {DEBIAN_DIR} are then used as they are), or copy the four IDX .gz files "
        f"into {keras_cache_dir()}, or run once with internet access, where Keras downloads "
        "them there."
    )


def load_fashion_mnist(channels=1):
    """Fashion-MNIST as NumPy arrays, in [0, 1], for any backend.

    Args:
        channels: 1, or 3 (the grey image repeated) for RGB networks.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: float32 images
        (N, 28, 28, channels) and int32 labels; 60,000 and 10,000 of them,
        in the files' order.

    Raises:
        DatasetNotFoundError: the files are neither in Keras' cache nor in
            Debian's package folder, and cannot be downloaded.

    Examples:
        >>> from keras_memblocks.data import load_fashion_mnist
        >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()  # doctest: +SKIP
        >>> x_train.shape, x_test.shape, int(y_train.max())  # doctest: +SKIP
        ((60000, 28, 28, 1), (10000, 28, 28, 1), 9)
    """
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: {channels!r}")
    provide_files()
    offline = bool(_missing(keras_cache_dir()))
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as error:  # the download's and gzip's errors, of many kinds
        if offline:
            raise _not_found(f"{type(error).__name__}: {str(error)[:200]}") from None
        raise DatasetNotFoundError(
            f"The Fashion-MNIST files in {keras_cache_dir()} cannot be read "
            f"({type(error).__name__}: {str(error)[:200]}); remove them and run again."
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)

    def images(x):
        x = (x.astype("float32") / 255.0)[..., None]
        return np.repeat(x, channels, axis=-1) if channels == 3 else x

    return (images(x_train), y_train.astype("int32")), (images(x_test), y_test.astype("int32"))
