"""Executes the notebooks top to bottom; `make figures` stores them executed.

    python notebooks/run_notebooks.py [--store] [NOTEBOOK ...]

With `--store`, each notebook is written back with its outputs (what the
docs site and a code host show; `tests/test_notebooks.py` checks that every
cell ran in order without an error). With `--figures DIR` (`make figures`),
the plot of each cell tagged `figure:NAME` (in the cell's metadata, which a
reader does not see) is also written to `DIR/NAME.png`, for the docs pages
that show it. Without either, nothing is written.
"""

import argparse
import base64
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


def figures(notebook):
    """`{name: png bytes}`: the first plot of each cell tagged `figure:<name>`."""
    found = {}
    for cell in notebook.cells:
        names = [tag[len("figure:") :] for tag in cell.metadata.get("tags", ())]
        names = [name for name in names if name]
        images = [
            o["data"]["image/png"]
            for o in cell.get("outputs", ())
            if "image/png" in o.get("data", {})
        ]
        for name in names:
            if not images:
                raise SystemExit(f"cell tagged figure:{name} shows no plot")
            found[name] = base64.b64decode(images[0])
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--store", action="store_true", help="write the outputs back")
    parser.add_argument("--figures", type=Path, help="write the tagged cells' plots here")
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
        if args.figures:
            args.figures.mkdir(parents=True, exist_ok=True)
            for name, png in figures(notebook).items():
                (args.figures / f"{name}.png").write_bytes(png)
        print(f"{path.name}: ran in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
