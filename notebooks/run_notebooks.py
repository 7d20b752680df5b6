"""Executes the notebooks top to bottom; `make figures` stores them executed.

    python notebooks/run_notebooks.py [--store] [NOTEBOOK ...]

With `--store`, each notebook is written back with its outputs (what the
docs site and a code host show; `tests/test_notebooks.py` checks that every
cell ran in order without an error), and `make figures` also sets
`MEMBLOCKS_FIGURES_DIR` so the notebooks save their plots to
`notebooks/figures/`. Without it, nothing is written.
"""

import argparse
import re
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
# What libraries print to stderr on their own in a kernel (TensorFlow's C++ start-up and
# CUDA probe, tqdm without ipywidgets, Keras' retracing notes): not kept in the stored copy.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl|[IWE]0000 |To enable the following instructions|"
    r".*TqdmWarning|  from \.autonotebook|WARNING:tensorflow:.*retracing|INFO: Created TensorFlow "
    r"Lite|fully_quantize:|INFO:tensorflow:Assets written to)"
)


def without_noise(notebook):
    """The notebook with the library noise lines dropped from its stderr outputs."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                lines = [line for line in output.text.splitlines() if not NOISE.match(line)]
                if not any(line.strip() for line in lines):
                    continue
                output.text = "\n".join(lines) + "\n"
            kept.append(output)
        cell.outputs = kept
    return notebook


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--store", action="store_true", help="write the outputs back")
    args = parser.parse_args()
    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        start = time.perf_counter()
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(
            notebook,
            timeout=15 * 60,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        if args.store:
            nbformat.write(without_noise(notebook), path)
        print(f"{path.name}: ran in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
