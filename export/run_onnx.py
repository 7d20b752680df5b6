"""Classify an image with an exported ONNX model: onnxruntime and NumPy only.

    python export/run_onnx.py model.onnx image.npy

Prints JSON: the top class and the top-5 probabilities.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_image import load_image  # noqa: E402
from edge_image import top_classes  # noqa: E402


def classify(model_path, image):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0]
    return session.run(None, {source.name: image[None].astype("float32")})[0][0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("image", help=".npy array (H, W, C), or an image file (needs Pillow)")
    args = parser.parse_args(argv)
    import onnxruntime

    shape = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"]) \
        .get_inputs()[0].shape
    image = load_image(args.image, *shape[1:])
    probabilities = classify(args.model, image)
    print(json.dumps({"top1": top_classes(probabilities, 1)[0], "top5": top_classes(probabilities)}))


if __name__ == "__main__":
    main()
