"""Installs the built wheel into fresh virtual environments and measures each.

    python tools/measure_installs.py dist/keras_memblocks-*.whl [--extras core export all]

For each choice (`core` is the wheel with `jax[cpu]`, as the README's first
install line with a backend; any other name is that extra), a new venv in a
temporary folder, `pip install --no-cache-dir` (every wheel downloaded, as on
a new machine), then: the install's wall time, the venv's size on disk,
the number of distributions, and whether TensorFlow is in it. Prints a
Markdown table; the figures depend on the network and the disk.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def size_mb(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def measure(wheel, choice):
    with tempfile.TemporaryDirectory(prefix=f"memblocks-{choice}-") as scratch:
        venv = Path(scratch) / "venv"
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        python = venv / "bin" / "python"
        subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        requirement = [wheel, "jax[cpu]"] if choice == "core" else [f"{wheel}[{choice}]"]
        start = time.perf_counter()
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-cache-dir", *requirement], check=True
        )
        seconds = time.perf_counter() - start
        listed = subprocess.run(
            [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
        ).stdout.splitlines()
        has_tf = any(line.lower().startswith("tensorflow==") for line in listed)
        return seconds, size_mb(venv), len(listed), has_tf


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel")
    parser.add_argument("--extras", nargs="+", default=["core", "export", "all"])
    args = parser.parse_args()
    wheel = str(Path(args.wheel).resolve())
    print("| install | time | venv size | distributions | TensorFlow |\n|---|---|---|---|---|")
    for choice in args.extras:
        seconds, megabytes, count, has_tf = measure(wheel, choice)
        label = 'wheel + "jax[cpu]"' if choice == "core" else f"wheel[{choice}]"
        print(
            f"| {label} | {seconds:.0f} s | {megabytes:,.0f} MB | {count} | "
            f"{'yes' if has_tf else 'no'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
