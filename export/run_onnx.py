"""Classify an image with an exported ONNX model: onnxruntime and NumPy only.

    python export/run_onnx.py model.onnx image.npy

Prints JSON: the top class and the top-5 probabilities; for a segmentation
model, the pixels of each class (`--save-mask mask.npy` keeps the class map).
A missing file or an image of the wrong size exits with code 2 and one line.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_image import check_file  # noqa: E402
from edge_image import load_image  # noqa: E402
from edge_image import report  # noqa: E402


def classify(model_path, image):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0]
    return session.run(None, {source.name: image[None].astype("float32")})[0][0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("image", help=".npy array (H, W, C), or an image file (needs Pillow)")
    parser.add_argument(
        "--save-mask", metavar="PATH", help="segmentation models: save the (H, W) class map as .npy"
    )
    args = parser.parse_args(argv)
    try:
        check_file(args.model, "model")
        import onnxruntime

        shape = (
            onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
            .get_inputs()[0]
            .shape
        )
        image = load_image(args.image, *shape[1:])
    except ValueError as error:  # the user's files: one line, no traceback
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(json.dumps(report(classify(args.model, image), args.save_mask)))


if __name__ == "__main__":
    main()
