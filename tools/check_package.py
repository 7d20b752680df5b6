"""Builds the sdist and wheel and checks them the way a user installs them.

    python tools/check_package.py        # run by `make test` (make package-check)

1. `python -m build` (the wheel is built from the sdist, so a file missing
   from the sdist fails here) and `twine check --strict`.
2. The wheel's long description is the README with no relative link (they
   resolve nowhere on an index page). The sdist holds the package and its
   metadata, and no tests that could not run outside the repository
   (MANIFEST.in says why).
3. A fresh virtual environment in a temporary directory, away from the
   source tree, gets the wheel and JAX: `pip install <wheel> "jax[cpu]"`.
   There TensorFlow must not be installed, `pip check` must pass, the
   README's example must run on JAX, `memblocks --help` must answer, and
   `memblocks train` must stop with the one line naming its extra.

Prints what it measured (install time, environment size) and exits non-zero
at the first failure.
"""

import glob
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from email import message_from_bytes
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(command, **kwargs):
    print("+", " ".join(str(c) for c in command), flush=True)
    return subprocess.run([str(c) for c in command], check=True, **kwargs)


def readme_example():
    """The README's first ```python block: the example a newcomer copies."""
    match = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    if match is None:
        sys.exit("check_package: the README has no ```python example")
    return match.group(1)


def size_mb(path):
    total = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return total / 1e6


def check_sdist(sdist):
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    for required in ("pyproject.toml", "LICENSE", "README.md", "CHANGELOG.md", "CITATION.cff"):
        if required not in names:
            sys.exit(f"check_package: the sdist lacks {required}")
    if not any(name.startswith("keras_memblocks/layers/") for name in names):
        sys.exit("check_package: the sdist lacks keras_memblocks/layers")
    stray = [name for name in names if name.startswith(("tests/", "notebooks/", "benchmarks/"))]
    if stray:
        sys.exit(f"check_package: the sdist ships files that need the repository: {stray[:5]}")


def check_long_description(wheel):
    """The index page's text: the README, with no link that resolves nowhere once the
    wheel has left the repository (setup.py makes them plain text)."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = message_from_bytes(archive.read(name))
    body = metadata.get_payload()
    if metadata["Description-Content-Type"] != "text/markdown" or "make demo" not in body:
        sys.exit("check_package: the wheel's long description is not the README")
    dead = re.findall(r"\]\((?!https?://|mailto:|#)[^)\s]+\)", body)
    if dead:
        sys.exit(f"check_package: the wheel's long description links to nowhere: {dead[:5]}")


def main():
    scratch = Path(tempfile.mkdtemp(prefix="memblocks-package-"))
    dist = scratch / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:  # setuptools is chatty: its log only when it failed
        sys.exit(f"check_package: python -m build failed:\n{built.stdout}\n{built.stderr}")
    artifacts = sorted(glob.glob(str(dist / "*")))
    run([sys.executable, "-m", "twine", "check", "--strict", *artifacts])
    (sdist,) = glob.glob(str(dist / "*.tar.gz"))
    (wheel,) = glob.glob(str(dist / "*.whl"))
    check_sdist(sdist)
    check_long_description(wheel)

    venv = scratch / "venv"
    run([sys.executable, "-m", "venv", venv])
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    start = time.perf_counter()
    run([python, "-m", "pip", "install", "--quiet", wheel, "jax[cpu]"])
    install_s = time.perf_counter() - start
    run([python, "-m", "pip", "check"])

    work = scratch / "work"  # no source tree on the path: only the wheel's files
    work.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "KERAS_BACKEND")
    }
    env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PATH=f"{bin_dir}:{env['PATH']}")
    probe = (
        "import importlib.util, keras_memblocks; "
        "assert importlib.util.find_spec('tensorflow') is None, 'TensorFlow is installed'; "
        "assert 'site-packages' in keras_memblocks.__file__, keras_memblocks.__file__; "
        "print(keras_memblocks.__version__)"
    )
    run([python, "-c", probe], cwd=work, env=env)
    (work / "example.py").write_text(readme_example())
    run([python, "example.py"], cwd=work, env=env)
    if not (work / "model.keras").is_file():
        sys.exit("check_package: the README example did not save model.keras")
    run([bin_dir / "memblocks", "--help"], cwd=work, env=env, stdout=subprocess.DEVNULL)
    result = subprocess.run(
        [bin_dir / "memblocks", "train"], cwd=work, env=env, capture_output=True, text=True
    )
    expected = 'pip install "keras-memblocks[train]"'
    if result.returncode != 2 or result.stderr.count("\n") != 1 or expected not in result.stderr:
        sys.exit(f"check_package: memblocks train without [train] said: {result.stderr!r}")
    print(
        f"check_package: passed. {Path(wheel).name}; core + jax[cpu] installed in "
        f"{install_s:.0f} s, {size_mb(venv):.0f} MB venv, no TensorFlow"
    )
    subprocess.run(["rm", "-rf", str(scratch)])


if __name__ == "__main__":
    main()
