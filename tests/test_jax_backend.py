import os
import subprocess
import sys
from pathlib import Path


def test_blocks_run_on_jax_backend():
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "tests.jax_backend_check"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "jax backend OK" in result.stdout
