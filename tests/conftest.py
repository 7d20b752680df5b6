import os
import shutil
import tempfile

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


def pytest_configure(config):
    """One JAX compilation cache for the processes the tests start.

    A JAX process compiles each kernel it runs, the initializers of every
    weight shape included, before its first step; the suite starts dozens of
    `memblocks` and Python processes on JAX that compile the same kernels (a
    3-step digits run: 56 s with a cold cache, 20 s with a filled one;
    CONTRIBUTING has the timings). The cache is JAX's own, keyed by the
    program, the compiler options and the versions, so a hit is the kernel a
    compilation would give. Set on the controller before pytest-xdist starts
    its workers; a cache the caller set is kept, and the directory made here is
    removed at the end. The test processes themselves do not write it: in one
    process Keras' jit cache already reuses each kernel, and writing every
    compilation to disk cost 3-5 % there.
    """
    if not hasattr(config, "workerinput") and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        config.jax_cache_made_here = tempfile.mkdtemp(prefix="memblocks-tests-jax-cache-")
        os.environ["JAX_COMPILATION_CACHE_DIR"] = config.jax_cache_made_here
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # the default: 1 s
    if os.environ.get("KERAS_BACKEND") == "jax":  # jax is imported by Keras anyway
        import jax

        jax.config.update("jax_enable_compilation_cache", False)


def pytest_unconfigure(config):
    made_here = getattr(config, "jax_cache_made_here", None)
    if made_here:
        shutil.rmtree(made_here, ignore_errors=True)


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
