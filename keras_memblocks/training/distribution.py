"""Where a run trains: the `strategy` a `TrainingConfig` names.

- `"none"`: Keras' default, one device.
- `"mirrored"`: `tf.distribute.MirroredStrategy`, every local GPU
  (TensorFlow backend).
- `"multiworker"`: `tf.distribute.MultiWorkerMirroredStrategy`, the cluster
  in `TF_CONFIG` (TensorFlow backend; trained by
  `distributed_loop.fit_distributed`, as Keras' `fit` fails under it).
- `"data-parallel"`: Keras' own `keras.distribution.DataParallel` over every
  device of every JAX process (JAX backend), Keras 3's way to scale out
  (keras-team/keras#20585): one process, or several joined by `connect`.

A data-parallel run of several processes writes its files once, from
process 0. The others ("followers") train the same steps on their shard of
each batch and write nothing; what only process 0 knows (whether to train,
and the epoch and weights a resumed run starts from) reaches them through a
`Handshake`, so they need not see process 0's files. Validation and test
metrics are computed on process 0 alone, on a local copy of the replicated
weights: every example counts, however the last batch divides.
"""

import contextlib
import json
import os
import sys

import keras
import numpy as np

from keras_memblocks.utils.strategies import STRATEGIES  # noqa: F401 (the names, here too)
from keras_memblocks.utils.strategies import check_backend
from keras_memblocks.utils.supervision import DEFAULT_PEER_TIMEOUT
from keras_memblocks.utils.supervision import say_joined

# Keras' own names for a multi-process run (`keras.distribution.initialize` reads them).
CLUSTER_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


def make(name):
    """The strategy object a config's `strategy` names (see the module docstring)."""
    check_backend(name, keras.backend.backend())
    if name == "data-parallel":
        return DataParallelRun()
    import tensorflow as tf

    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        if strategy.num_replicas_in_sync == 1:
            print(
                "memblocks: --strategy mirrored found one device (no GPU, or one): training "
                "on 1 replica, as --strategy none would.",
                file=sys.stderr,
            )
        return strategy
    if name == "multiworker":
        return _multi_worker_strategy()
    return tf.distribute.get_strategy()  # the default (no distribution)


def resolve(strategy, name):
    """`strategy` as the trainer uses it: a `keras.distribution` distribution
    is wrapped in a `DataParallelRun`; `None` makes the one `name` names."""
    if strategy is None:
        return make(name)
    if isinstance(strategy, (keras.distribution.DataParallel, keras.distribution.ModelParallel)):
        return DataParallelRun(strategy)
    return strategy


def _multi_worker_strategy():
    """MultiWorkerMirroredStrategy for the cluster in TF_CONFIG, saying what it
    waits for (every worker to start: `memblocks train` gives up after
    `--peer-timeout`)."""
    import tensorflow as tf

    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "null")
        if cluster is not None:  # without TF_CONFIG: one local worker
            workers = cluster["cluster"]["worker"]
            index = cluster["task"]["index"]
            print(
                f"memblocks: worker {index} of {len(workers)} ({workers[index]}): waiting "
                f"for every worker in TF_CONFIG ({', '.join(workers)}).",
                file=sys.stderr,
                flush=True,
            )
    except (ValueError, KeyError, IndexError, TypeError):
        raise ValueError(
            "--strategy multiworker reads the cluster from TF_CONFIG, which is missing or "
            'not {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": N}}.'
        ) from None
    # Creating the strategy waits for every worker, and installs TensorFlow's own
    # SIGTERM handler, which does not end the process; `memblocks train` runs a
    # multi-worker run in a child process it can always stop (cli._supervised).
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    say_joined()
    return strategy


def agreed_epoch(strategy, latest, epochs):
    """The epoch a run resumes from: `latest` (this process's newest backup),
    or, in a multi-worker run, the oldest of every worker's newest backup.

    Each worker writes its own backups, and a kill can stop one of them
    while it saves: it is then one epoch behind the others, which keep the
    backup before their newest (`EpochBackup(keep=2)`). Resuming each from
    its own newest would all-reduce gradients of different weights.
    `None`: this process's newest, whatever it is.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    # Every worker's epoch as a one-hot row, summed: the lowest one present is the oldest.
    present = strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        strategy.run(lambda: tf.one_hot(latest, epochs + 1, dtype=tf.float32)),
        axis=None,
    )
    return int(np.flatnonzero(present.numpy() > 0)[0])


# === JAX across processes ===


def cluster_from_environment(coordinator=None, num_processes=None, process_id=None):
    """`(coordinator, num_processes, process_id)`: the arguments, else Keras'
    variables (`KERAS_DISTRIBUTION_JOB_ADDRESSES`: the coordinator first, or
    every process's address; `..._NUM_PROCESSES`; `..._PROCESS_ID`); `None`
    for what neither gives.

    Examples:
        >>> import os
        >>> from keras_memblocks.training import distribution
        >>> os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"] = "10.0.0.1:1234,10.0.0.2:1234"
        >>> os.environ["KERAS_DISTRIBUTION_NUM_PROCESSES"] = "2"
        >>> distribution.cluster_from_environment(process_id=1)
        ('10.0.0.1:1234', 2, 1)
        >>> for name in distribution.CLUSTER_VARIABLES:
        ...     _ = os.environ.pop(name, None)
    """
    addresses, count, index = (os.environ.get(name) for name in CLUSTER_VARIABLES)
    coordinator = coordinator or (addresses.split(",")[0] if addresses else None)
    try:
        num_processes = num_processes if num_processes is not None else _int_or_none(count)
        process_id = process_id if process_id is not None else _int_or_none(index)
    except ValueError:
        raise ValueError(
            f"{CLUSTER_VARIABLES[1]}={count!r} and {CLUSTER_VARIABLES[2]}={index!r} must be "
            "whole numbers."
        ) from None
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"The number of processes must be at least 1, not {num_processes}.")
    if process_id is not None and num_processes is not None:
        if not 0 <= process_id < num_processes:
            raise ValueError(
                f"The process id must be 0 .. {num_processes - 1} for {num_processes} "
                f"processes, not {process_id}."
            )
    return coordinator, num_processes, process_id


def _int_or_none(text):
    return None if text in (None, "") else int(text)


def connect(coordinator=None, num_processes=None, process_id=None, timeout=DEFAULT_PEER_TIMEOUT):
    """Joins this process to a data-parallel run of several JAX processes.

    Calls `jax.distributed.initialize` (before anything else runs on JAX);
    each unset argument comes from `cluster_from_environment`, else from
    JAX's own detection of its cluster (Slurm, Open MPI ...). Process 0
    serves at `coordinator` ("host:port"). JAX waits up to `timeout` seconds
    for every process, then ends the process (`memblocks train` says so in one
    line). On CPU hosts the processes all-reduce through Gloo.

    Returns:
        `(process_id, num_processes)`.

    Examples:
        On each of two hosts (process ids 0 and 1), before building a model:

        >>> from keras_memblocks.training import distribution
        >>> distribution.connect("10.0.0.1:1234", 2, 0)  # doctest: +SKIP
        (0, 2)
    """
    import jax

    coordinator, num_processes, process_id = cluster_from_environment(
        coordinator, num_processes, process_id
    )
    if num_processes == 1:
        return 0, 1  # nothing to join
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=int(timeout),
    )
    say_joined()
    return jax.process_index(), jax.process_count()


class DataParallelRun:
    """`keras.distribution.DataParallel` over every device of every JAX process,
    with what the trainer asks of a strategy: `scope()` and
    `num_replicas_in_sync` (as a `tf.distribute.Strategy` has), and which
    process this is.

    Args:
        distribution: a `keras.distribution.Distribution`; default:
            `DataParallel` over `jax.devices()`, every process's devices.
    """

    def __init__(self, distribution=None):
        import jax

        self.distribution = distribution or keras.distribution.DataParallel(devices=jax.devices())
        self.process_id = jax.process_index()
        self.num_processes = jax.process_count()

    @property
    def num_replicas_in_sync(self):
        return int(self.distribution.device_mesh.devices.size)

    @property
    def is_follower(self):
        return self.process_id != 0

    def scope(self):
        """Keras' distribution for what runs inside (building, compiling, `fit`)."""
        return self.distribution.scope()

    @contextlib.contextmanager
    def local(self):
        """No distribution inside: models built here live on this process's
        default device (process 0's validation and test copy)."""
        caller = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(caller)

    def check_batch_size(self, batch_size):
        if batch_size % self.num_replicas_in_sync:
            raise ValueError(
                f"--batch-size {batch_size} does not divide among the "
                f"{self.num_replicas_in_sync} devices of the data-parallel run; use a "
                f"multiple of {self.num_replicas_in_sync}."
            )


def is_follower(strategy):
    """Whether this process trains without writing: a data-parallel run's
    process other than 0."""
    return isinstance(strategy, DataParallelRun) and strategy.is_follower


class RunStoppedError(RuntimeError):
    """Process 0 of a data-parallel run stopped before training (its own
    output says why); the other processes stop with it."""


class Handshake:
    """What process 0 of a data-parallel run tells the others about each
    seed, so that every process makes the same collective calls in the same
    order (a value put into a distributed variable is one):

    1. before anything is built: train it (`go`), or not (`skip`: it
       already finished; `stop`: an error, which process 0 raises);
    2. once process 0 has read its resume point: the epoch it starts from
       (`start`), or `stop`.

    The others call `receive_decision` and `receive_start` at the same
    points. A run of one process skips all of it.
    """

    GO, SKIP, STOP = 1, 2, 0

    def __init__(self, strategy):
        self.strategy = strategy
        # Headers still to send: the decision, then the start.
        several = isinstance(strategy, DataParallelRun) and strategy.num_processes > 1
        self.pending = 2 if several else 0

    def _header(self, code, epoch=0):
        from jax.experimental import multihost_utils

        self.pending -= 1
        header = multihost_utils.broadcast_one_to_all(np.array([code, epoch], dtype=np.int64))
        return int(header[0]), int(header[1])

    def go(self):
        """Process 0: the seed trains."""
        if self.pending == 2:
            self._header(self.GO)

    def skip(self):
        """Process 0: the seed already finished; nothing trains."""
        if self.pending == 2:
            self._header(self.SKIP)
            self.pending = 0

    def start(self, first_epoch):
        """Process 0: training starts at `first_epoch`."""
        if self.pending == 1:
            self._header(self.GO, first_epoch)

    def stop(self):
        """Process 0: an error stops the run (a no-op once training started)."""
        if self.pending:
            self._header(self.STOP)
            self.pending = 0

    def receive_decision(self):
        """The others: whether the seed trains (`False`: it already finished)."""
        code, _ = self._header(self.STOP)
        if code == self.SKIP:
            return False
        self._check(code)
        return True

    def receive_start(self):
        """The others: the epoch training starts from."""
        code, epoch = self._header(self.STOP)
        self._check(code)
        return epoch

    def _check(self, code):
        if code != self.GO:
            self.pending = 0
            raise RunStoppedError(
                f"process 0 stopped the run before training (its output says why); process "
                f"{self.strategy.process_id} stops with it."
            )


def _state(model):
    """`model`'s variables and its optimizer's (built first if need be)."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    optimizer = list(model.optimizer.variables) if model.optimizer is not None else []
    return list(model.variables) + optimizer


def share_state(strategy, model, local=None):
    """Sets every weight and optimizer value of the distributed `model`, on
    every device of every process, to those of process 0's `local` copy (the
    others pass `None`). Every process calls it together: a value put into a
    distributed variable is a collective of all of them."""
    from jax.experimental import multihost_utils

    with strategy.scope():
        variables = _state(model)
    if local is not None:
        with strategy.local():
            values = [keras.ops.convert_to_numpy(v) for v in _state(local)]
    else:  # a follower: only the shapes count
        values = [np.zeros(v.shape, v.dtype) for v in variables]
    if strategy.num_processes > 1:
        values = multihost_utils.broadcast_one_to_all(values)
    with strategy.scope():
        for variable, value in zip(variables, values):
            variable.assign(np.asarray(value))


def local_copy(strategy, model, build):
    """Process 0's copy of the distributed `model` on its own default device:
    `build()` (a compiled model of the same architecture) run with no
    distribution, given `model`'s weights. It holds what process 0 reads
    and writes: the resume point, validation, checkpoints."""
    weights = model.get_weights()  # the replicated values, on this process
    with strategy.local():
        local = build()
        local.set_weights(weights)
    return local


class Undistributed(keras.callbacks.Callback):
    """Runs `callback`'s hooks with no distribution set: what a checkpoint or
    a backup computes while it saves stays on this process. Under Keras'
    distribution a save puts values into distributed arrays, a collective
    that the other processes, training on, would never join."""

    def __init__(self, callback, strategy):
        super().__init__()
        self.callback = callback
        self.strategy = strategy

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def _call(self, hook, *args):
        with self.strategy.local():
            getattr(self.callback, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)


class LocalValidation(keras.callbacks.Callback):
    """Process 0's validation in a data-parallel run: at each epoch's end the
    replicated weights are copied into `local` (`local_copy`) and evaluated
    on every validation example; the `val_` metrics go into the epoch's logs,
    as `fit(validation_data=...)` would put them. Keras' own validation would
    shard each batch over the devices, and fails on a last batch that does
    not divide among them."""

    def __init__(self, local, validation_data, strategy):
        super().__init__()
        self.local = local
        self.validation_data = validation_data
        self.strategy = strategy

    def on_epoch_end(self, epoch, logs=None):
        weights = self.model.get_weights()
        with self.strategy.local():
            self.local.set_weights(weights)
            metrics = self.local.evaluate(self.validation_data, return_dict=True, verbose=0)
        if logs is not None:
            logs.update({f"val_{name}": float(value) for name, value in metrics.items()})
