"""Classify an image with an exported TFLITE file, from a clone: ai-edge-litert and NumPy only.

    python export/run_tflite.py model.tflite image.npy

The same as `memblocks predict model.tflite image.npy` (which an installed
package gives): JSON with the top class and the top 5 (labelled where the
file has labels); for a segmentation model, the pixels of each class
(`--save-mask mask.npy` keeps the class map). The code is
`keras_memblocks/edge.py`, loaded by its path so that neither TensorFlow,
Keras nor the package is imported. A missing file or an image of the wrong
size exits with code 2 and one line.
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

EDGE = Path(__file__).resolve().parents[1] / "keras_memblocks" / "edge.py"


def load_edge():
    spec = importlib.util.spec_from_file_location("memblocks_edge", EDGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a .tflite file that memblocks export wrote")
    parser.add_argument("image", help=".npy array (H, W, C), or an image file (needs Pillow)")
    parser.add_argument(
        "--save-mask", metavar="PATH", help="segmentation models: save the (H, W) class map as .npy"
    )
    args = parser.parse_args(argv)
    try:
        result = load_edge().predict(args.model, args.image, args.save_mask)
    except ValueError as error:  # the user's files: one line, no traceback
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
