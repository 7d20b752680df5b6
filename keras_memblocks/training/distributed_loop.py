"""`Model.fit` for strategies Keras' own loop cannot run yet.

Keras 3's `fit` fails under `tf.distribute.MultiWorkerMirroredStrategy`
(keras-team/keras#20585: its symbolic build reduces the first distributed
batch, then `reduce_per_replica` of the step's logs fails). This loop does
what `fit` does, with the model's own pieces: each step is one
`strategy.run` of `model.compute_loss` (already scaled for the number of
replicas) and the compiled optimizer, which all-reduces the gradients;
metrics are the compiled ones; callbacks (the trainer's backup and checkpoint,
history file, TensorBoard, progress bar) get the same calls in the same order.
The trainer uses it for the multi-worker strategy only; everything else
keeps `fit`.
"""

import keras
import tensorflow as tf


def _examples(x):
    """The number of examples in a replica's batch, as a float weight."""
    return tf.cast(tf.shape(tf.nest.flatten(x)[0])[0], "float32")


def _sharded_by_example(dataset):
    # In-memory and generated datasets have no files to shard by: each
    # worker takes every n-th batch instead (what Keras' fit does too).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _build(model, strategy, dataset):
    """Creates metric, loss and optimizer variables outside any replica
    context (they cannot be created inside `strategy.run`)."""
    x, y = next(iter(dataset.take(1)))
    with strategy.scope():
        y_pred = model(x, training=False)
        model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        model.compute_metrics(x, y, y_pred)
        model.optimizer.build(model.trainable_variables)
        model.reset_metrics()


def fit_distributed(
    model,
    strategy,
    train_data,
    validation_data=None,
    epochs=1,
    steps_per_epoch=None,
    callbacks=(),
    verbose=1,
    initial_epoch=0,
):
    """Trains a compiled `model` under `strategy` like `model.fit` would.

    Args:
        model: a compiled model whose variables were created in
            `strategy.scope()`.
        strategy: a `tf.distribute.Strategy`, e.g. `MultiWorkerMirroredStrategy`.
        train_data: a `tf.data.Dataset` of `(x, y)` batches of the global
            batch size.
        validation_data: the same for validation, or `None`.
        epochs: as `model.fit`.
        steps_per_epoch: as `model.fit`.
        callbacks: as `model.fit`.
        verbose: as `model.fit`.
        initial_epoch: as `model.fit`: the epoch to start at (a resumed run's).

    Returns:
        The `keras.callbacks.History` of the run.

    Examples:
        The default strategy stands in for a cluster here:

        >>> import numpy as np, keras, tensorflow as tf
        >>> from keras_memblocks.training import fit_distributed
        >>> strategy = tf.distribute.get_strategy()
        >>> with strategy.scope():
        ...     model = keras.Sequential([keras.Input((4,)),
        ...                               keras.layers.Dense(2, activation="softmax")])
        ...     model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> examples = (np.ones((8, 4), "float32"), np.ones(8, "int32"))
        >>> data = tf.data.Dataset.from_tensor_slices(examples)
        >>> history = fit_distributed(model, strategy, data.batch(4), epochs=2, verbose=0)
        >>> sorted(history.history), len(history.history["loss"])
        (['accuracy', 'loss'], 2)
    """
    _build(model, strategy, train_data)
    with strategy.scope():
        train_loss = keras.metrics.Mean(name="loss")
        validation_loss = keras.metrics.Mean(name="loss")
    distributed_train = strategy.experimental_distribute_dataset(_sharded_by_example(train_data))
    distributed_validation = None
    if validation_data is not None:
        distributed_validation = strategy.experimental_distribute_dataset(
            _sharded_by_example(validation_data)
        )
    if steps_per_epoch is None:
        steps_per_epoch = int(train_data.cardinality())
        if steps_per_epoch < 0:
            raise ValueError("The training dataset has no known length: pass steps_per_epoch.")

    @tf.function
    def train_step(batch):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
                scaled = model.optimizer.scale_loss(loss)  # mixed precision
            gradients = tape.gradient(scaled, model.trainable_variables)
            model.optimizer.apply(gradients, model.trainable_variables)
            # compute_loss divides by the number of replicas; the tracker
            # wants the replica's own mean loss, weighted by its batch's size
            # (as fit's is), so that a short last batch counts for what it holds.
            train_loss.update_state(loss * strategy.num_replicas_in_sync, _examples(x))
            model.compute_metrics(x, y, y_pred)

        strategy.run(replica_step, args=batch)

    @tf.function
    def validation_step(batch):
        def replica_step(x, y):
            y_pred = model(x, training=False)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
            validation_loss.update_state(loss * strategy.num_replicas_in_sync, _examples(x))
            model.compute_metrics(x, y, y_pred)

        strategy.run(replica_step, args=batch)

    def logs(loss_tracker):
        results = {name: float(value) for name, value in model.get_metrics_result().items()}
        results["loss"] = float(loss_tracker.result())
        return results

    callback_list = keras.callbacks.CallbackList(
        list(callbacks),
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
    )
    model.stop_training = False
    callback_list.on_train_begin()
    epoch_logs = {}
    # One iterator across epochs, as fit keeps with steps_per_epoch: the trainer's
    # dataset holds every epoch in turn. One that holds a single epoch starts again.
    iterator = iter(distributed_train)

    def next_batch():
        nonlocal iterator
        try:
            return next(iterator)
        except StopIteration:
            iterator = iter(distributed_train)
            return next(iterator)

    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        train_loss.reset_state()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            try:
                batch = next_batch()
            except StopIteration:  # an empty dataset
                break
            train_step(batch)
            callback_list.on_train_batch_end(step, logs(train_loss))
        epoch_logs = logs(train_loss)
        if distributed_validation is not None:
            model.reset_metrics()
            validation_loss.reset_state()
            for batch in distributed_validation:
                validation_step(batch)
            epoch_logs.update(
                {f"val_{name}": value for name, value in logs(validation_loss).items()}
            )
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end(epoch_logs)
    return model.history
