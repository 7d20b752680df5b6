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
import tempfile


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


class NativeStderr:
    """What C++ code wrote to stderr inside `native_stderr_captured`."""

    def __init__(self, file):
        self._file = file

    def text(self):
        self._file.seek(0)
        return self._file.read().decode(errors="replace")

    def replay(self):
        """Writes the captured lines to the console (a crash shows them with its traceback)."""
        sys.stderr.write(self.text())
        sys.stderr.flush()


@contextlib.contextmanager
def native_stderr_captured():
    """Keeps what C++ libraries write straight to stderr off the console.

    LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
    for every interpreter, and the TFLite converter its "fully_quantize: 0,
    inference_type: 6, ..." line, whatever `TF_CPP_MIN_LOG_LEVEL` says.
    Inside the block, file descriptor 2 goes to a temporary file, while
    Python's own `sys.stderr` (warnings, tracebacks, progress) still reaches
    the console. Yields a `NativeStderr`: `replay()` shows what was kept
    back, for a crash.

    Examples:
        >>> import os
        >>> from keras_memblocks.utils.console import native_stderr_captured
        >>> with native_stderr_captured() as native:
        ...     _ = os.write(2, b"INFO: a C++ library speaking\\n")
        >>> native.text()
        'INFO: a C++ library speaking\\n'
    """
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    capture = tempfile.TemporaryFile()
    try:
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        os.dup2(capture.fileno(), 2)
        yield NativeStderr(capture)
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if sys.stderr is not python_stderr:
            sys.stderr.close()
        sys.stderr = python_stderr
