"""Loading an input image for the edge scripts: NumPy only (Pillow if present).

Standalone on purpose: the edge scripts run where neither TensorFlow nor
keras_memblocks is installed, so they import nothing of the package.
"""

import os

import numpy as np


def check_file(path, what):
    """Raises a one-line `ValueError` unless `path` is an existing file."""
    if not os.path.isfile(path):
        raise ValueError(f"No {what} file {str(path)!r}.")


def load_image(path, height, width, channels):
    """A float32 image (H, W, C) from a .npy array or an image file.

    A .npy file is used as is (already preprocessed like the training data);
    an image file (needs Pillow) is resized to the model's input and scaled
    to [0, 1], the preprocessing of the embedded digits.
    """
    check_file(path, "image")
    height, width, channels = int(height), int(width), int(channels)
    if str(path).endswith(".npy"):
        image = np.load(path).astype("float32")
    else:
        from PIL import Image  # optional dependency of the edge scripts

        mode = "L" if channels == 1 else "RGB"
        image = Image.open(path).convert(mode).resize((width, height))
        image = np.asarray(image, dtype="float32") / 255.0
        if channels == 1:
            image = image[..., None]
    if image.shape != (height, width, channels):
        raise ValueError(
            f"{path}: image of shape {image.shape}, the model takes "
            f"{(height, width, channels)}; resize it (an image file other "
            "than .npy is resized for you, with Pillow)"
        )
    return image


def report(probabilities, save_mask=None):
    """The JSON-ready result for one image's model output.

    A classifier's (classes,) output gives the top class and the top 5; a
    segmentation model's (H, W, classes) output gives the number of pixels
    of each class, and `save_mask` saves the (H, W) class map as .npy.
    """
    if probabilities.ndim == 1:
        return {"top1": top_classes(probabilities, 1)[0], "top5": top_classes(probabilities)}
    mask = probabilities.argmax(-1)
    if save_mask:
        np.save(save_mask, mask)
    classes, counts = np.unique(mask, return_counts=True)
    return {
        "segmentation": {
            "shape": list(mask.shape),
            "pixels_per_class": {int(c): int(n) for c, n in zip(classes, counts)},
        }
    }


def top_classes(probabilities, k=5):
    # Stable, descending: ties go to the lowest class, as argmax breaks them
    # (int8 outputs step in 1/256 and tie often).
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"class": int(i), "probability": float(probabilities[i])} for i in order]
