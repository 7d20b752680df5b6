"""Classify an image with an exported TFLite model: LiteRT and NumPy only.

    python export/run_tflite.py model.tflite image.npy

Prints JSON: the top class and the top-5 probabilities; for a segmentation
model, the pixels of each class (`--save-mask mask.npy` keeps the class map).
Works for float and full-integer (int8) models. A missing file or an image
of the wrong size exits with code 2 and one line.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_image import check_file  # noqa: E402
from edge_image import load_image  # noqa: E402
from edge_image import report  # noqa: E402


def classify(model_path, image):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    batch = image[None].astype("float32")
    if source["dtype"] == np.int8:  # full-integer model: quantise the input
        scale, zero_point = source["quantization"]
        batch = np.clip(np.round(batch / scale + zero_point), -128, 127).astype(np.int8)
    interpreter.set_tensor(source["index"], batch)
    interpreter.invoke()
    output = interpreter.get_tensor(target["index"])
    if target["dtype"] == np.int8:
        scale, zero_point = target["quantization"]
        output = (output.astype("float32") - zero_point) * scale
    return output[0]


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
        from ai_edge_litert.interpreter import Interpreter

        shape = Interpreter(model_path=args.model).get_input_details()[0]["shape"]
        image = load_image(args.image, *shape[1:])
    except ValueError as error:  # the user's files: one line, no traceback
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(json.dumps(report(classify(args.model, image), args.save_mask)))


if __name__ == "__main__":
    main()
