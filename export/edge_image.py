"""Loading an input image for the edge scripts: NumPy only (Pillow if present).

Standalone on purpose: the edge scripts run where neither TensorFlow nor
keras_memblocks is installed, so they import nothing of the package.
"""

import numpy as np


def load_image(path, height, width, channels):
    """A float32 image (H, W, C) from a .npy array or an image file.

    A .npy file is used as is (already preprocessed like the training data);
    an image file (needs Pillow) is resized to the model's input and scaled
    to [0, 1], the preprocessing of the embedded digits.
    """
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
        raise ValueError(f"{path}: image of shape {image.shape}, the model takes "
                         f"{(height, width, channels)}")
    return image


def top_classes(probabilities, k=5):
    order = np.argsort(probabilities)[::-1][:k]
    return [{"class": int(i), "probability": float(probabilities[i])} for i in order]
