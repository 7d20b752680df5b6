"""The training strategies' names and the Keras backend each needs.

No Keras here: `memblocks train` refuses a strategy its backend cannot run
before it imports Keras or TensorFlow, with the same check and words as the
trainer (`keras_memblocks.training.distribution`).
"""

STRATEGIES = ("none", "mirrored", "multiworker", "data-parallel")
TF_STRATEGIES = ("mirrored", "multiworker")


def check_backend(name, backend):
    """Refuses a strategy the Keras backend cannot run, in one line.

    Examples:
        >>> from keras_memblocks.utils.strategies import check_backend
        >>> check_backend("multiworker", "tensorflow")  # fine: nothing happens
        >>> try:
        ...     check_backend("data-parallel", "tensorflow")
        ... except ValueError as error:
        ...     print(str(error)[:60])
        --strategy data-parallel (strategy='data-parallel') is Keras
    """
    if name in TF_STRATEGIES and backend != "tensorflow":
        raise ValueError(
            f"--strategy {name} (strategy={name!r}) is tf.distribute, which trains on the "
            f"TensorFlow backend only, and Keras' backend is {backend!r}; set "
            "KERAS_BACKEND=tensorflow, or train with --strategy none (or data-parallel on JAX)."
        )
    if name == "data-parallel" and backend != "jax":
        raise ValueError(
            f"--strategy data-parallel (strategy='data-parallel') is Keras' "
            f"keras.distribution.DataParallel, which trains on the JAX backend, and Keras' "
            f"backend is {backend!r}; set KERAS_BACKEND=jax, or use --strategy mirrored or "
            "multiworker on TensorFlow."
        )
