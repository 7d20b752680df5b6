"""`memblocks` with faults injected at chosen points: `python tests/fault_hooks.py train ...`.

The same entry point as the installed command (`keras_memblocks.cli.main`),
with what the environment asks for patched in first:

- `FAULT_DIE_AFTER_EPOCH=N`: SIGKILL (no clean-up) at the end of epoch N,
  after the backup and the checkpoint saw it;
- `FAULT_DIE_AT=WHEN:NAME:N` (WHEN `before` or `after`): SIGKILL just before
  or just after the N-th rename of a finished file onto NAME (`best.keras`,
  `best.json`, `history.csv`, `epoch-0002.weights.h5`, ...): every point where
  what a run leaves on disk changes; "before" leaves the new file written in
  full under its temporary name, as a kill while writing it would;
- `FAULT_HOLD_UNTIL=path`: once the run holds its directory, write
  `path.held` and wait until `path` exists (a run that stays in progress for
  as long as a test needs);
- `FAULT_NAN_PIXEL=1`: one pixel of the first training image is NaN;
- `FAULT_DIE_IN_EXPORT=1`: SIGKILL once the files are converted, before
  their parity check (the staging folder is full, the output not yet there).
"""

import os
import signal
import sys
import time
from pathlib import Path


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _hook_renames(spec):
    when, name, count = spec.split(":")
    seen = 0
    replace = os.replace

    def replace_or_die(source, target, *args, **kwargs):
        nonlocal seen
        hit = Path(target).name == name and (seen := seen + 1) == int(count)
        if hit and when == "before":
            _die()
        result = replace(source, target, *args, **kwargs)
        if hit and when == "after":
            _die()
        return result

    os.replace = replace_or_die


def _hook_training():
    import keras

    from keras_memblocks.training import fitting
    from keras_memblocks.training import specs

    die_after = int(os.environ.get("FAULT_DIE_AFTER_EPOCH", "0"))
    hold_until = os.environ.get("FAULT_HOLD_UNTIL")

    class Faults(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if hold_until:
                Path(hold_until + ".held").write_text(str(os.getpid()))
                while not Path(hold_until).exists():
                    time.sleep(0.05)

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == die_after:
                _die()

    made = fitting.make_callbacks

    def with_faults(*args, **kwargs):
        callbacks, path, timer = made(*args, **kwargs)
        return callbacks + [Faults()], path, timer

    fitting.make_callbacks = with_faults

    if os.environ.get("FAULT_NAN_PIXEL"):
        import numpy as np

        from keras_memblocks.data import digits

        loader = digits.load_digits

        def with_nan(*args, **kwargs):
            (x_train, y_train), test = loader(*args, **kwargs)
            x_train = x_train.copy()
            x_train[0, 0, 0, 0] = np.nan
            return (x_train, y_train), test

        specs.digits.load_digits = with_nan


def _hook_export():
    from keras_memblocks.export import model_export

    check = model_export.check_parity

    def die_before_parity(*args, **kwargs):
        _die()
        return check(*args, **kwargs)

    model_export.check_parity = die_before_parity


if __name__ == "__main__":
    sys.argv[0] = "memblocks"  # as the installed command: the package imports no Keras yet
    from keras_memblocks.utils.console import quiet_tensorflow

    quiet_tensorflow()  # as cli.main does first: the hooks import TensorFlow before it runs
    if os.environ.get("FAULT_DIE_AT"):
        _hook_renames(os.environ["FAULT_DIE_AT"])
    if any(key.startswith("FAULT_") and key != "FAULT_DIE_IN_EXPORT" for key in os.environ):
        _hook_training()
    if os.environ.get("FAULT_DIE_IN_EXPORT"):
        _hook_export()
    from keras_memblocks import cli

    sys.exit(cli.main(sys.argv[1:]))
