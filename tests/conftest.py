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

# Run only in its own process with KERAS_BACKEND=jax (test_jax_backend.py).
collect_ignore = ["jax_backend_check.py"]
