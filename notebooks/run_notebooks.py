"""Executes the notebooks top to bottom; `make figures` uses it to save the
README's plots (MEMBLOCKS_FIGURES_DIR). Outputs are not written back: the
notebooks stay output-free in git.

    python notebooks/run_notebooks.py [NOTEBOOK ...]
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def main(paths):
    paths = [Path(p) for p in paths] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        start = time.perf_counter()
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(
            notebook,
            timeout=15 * 60,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        print(f"{path.name}: ran in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
