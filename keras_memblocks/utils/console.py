"""A quiet console for the `memblocks` command.

TensorFlow 2.21 writes its oneDNN and CUDA-probe lines to stderr while it
is imported, before its logging is set up, whatever `TF_CPP_MIN_LOG_LEVEL`
says (tensorflow/tensorflow#100442), and on a machine without a GPU it
logs "failed call to cuInit" as an error later. A newcomer should see
progress bars and tables, not that.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_to_devnull():
    # The lines come from C++, so Python's sys.stderr cannot catch them:
    # the file descriptor itself is pointed at /dev/null for a moment.
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def quiet_tensorflow():
    """Imports TensorFlow, if installed, without its C++ start-up lines.

    Sets `TF_CPP_MIN_LOG_LEVEL=3` for this process and its children. Does
    nothing when the user set `TF_CPP_MIN_LOG_LEVEL` (their choice
    stands), or when TensorFlow is already imported. Errors of TensorFlow
    itself still reach the user as Python exceptions.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" in sys.modules:
        return
    with _stderr_to_devnull():
        try:
            import tensorflow  # noqa: F401
        except ImportError:  # TensorFlow is optional for the layers
            pass
