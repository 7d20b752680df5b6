"""Metrics of the papers' tasks beyond Keras' defaults."""

import keras


def mean_iou(num_classes, ignore_class=255):
    """Mean IoU over `num_classes`, ignoring label `ignore_class` (255).

    Keras' own `MeanIoU`, configured for integer labels and softmax outputs.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.metrics import mean_iou
        >>> metric = mean_iou(2)
        >>> labels = np.array([[0, 1, 255]])
        >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.9, 0.1]]])
        >>> round(float(metric(labels, probs)), 4)  # the pixel labelled 255 is ignored
        1.0
    """
    return keras.metrics.MeanIoU(
        num_classes=num_classes,
        ignore_class=ignore_class,
        sparse_y_true=True,
        sparse_y_pred=False,
        name="mean_iou",
    )
