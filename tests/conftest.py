import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings  # noqa: E402

# Each example builds a Keras layer (tens of ms): few examples, no deadline.
settings.register_profile(
    "keras",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
# `make test-large` re-runs the property tests with many more examples.
settings.register_profile(
    "thorough",
    parent=settings.get_profile("keras"),
    max_examples=300,
    derandomize=False,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "keras"))


def pytest_runtest_setup(item):
    """Every test starts from the same seeds (Python, NumPy, the backend).

    Under `--dist worksteal` which tests share a worker, and in which order,
    changes from run to run; a test that builds an unseeded model drew
    different weights each time and could pass here and fail on CI.
    """
    import keras

    keras.utils.set_random_seed(0)


def pytest_collection_modifyitems(config, items):
    """Deselects what does not apply here (pytest reports them as deselected),
    and moves the `runs_first` tests to the front.

    `@pytest.mark.backends("jax")` runs only on those Keras backends;
    `@pytest.mark.needs_extras("data")` only where those extras are installed;
    `@pytest.mark.core_only` only where no extra is (the core install).
    `make test` runs the suite on TensorFlow with every extra, the backend
    files on JAX in the core install, and their `needs_extras` tests on JAX
    with every extra, so each runs in at least one of them.
    """
    import keras

    from keras_memblocks.utils import extras

    backend = keras.backend.backend()
    installed = {name for name in extras.EXTRAS if not extras.missing_packages(name)}

    def applies(item):
        marker = item.get_closest_marker("backends")
        if marker is not None and backend not in marker.args:
            return False
        marker = item.get_closest_marker("needs_extras")
        if marker is not None and not set(marker.args) <= installed:
            return False
        return not (installed and item.get_closest_marker("core_only"))

    deselected = [item for item in items if not applies(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if applies(item)]

    # The longest tests first: pytest-xdist hands each worker a share of the
    # collection in order, so a minutes-long test collected last keeps one
    # worker busy for minutes while the other sits idle (CONTRIBUTING, "What
    # make test runs", has the timings). Stable: the rest keep their order.
    items.sort(key=lambda item: item.get_closest_marker("runs_first") is None)
