"""FCN on a dilated ResNet50 (SR paper Table IV)."""

from keras_memblocks.models import segmentation_model


def fcn(
    num_classes,
    *,
    input_shape,
    backbone="resnet50",
    blocks=None,
    output_stride=8,
    auxiliary_head=False,
    dropout=0.1,
):
    """FCN: a plain conv head on a dilated ResNet50, output at input resolution.

    Head: 3x3 conv to 512 (C/4), BN, ReLU, dropout, 1x1 conv to the classes,
    bilinear upsampling. Arguments as in `deeplabv3`.

    Examples:
        >>> from keras_memblocks.models import fcn
        >>> fcn(19, input_shape=(64, 64, 3)).output.shape
        (None, 64, 64, 19)
    """
    return segmentation_model.build(
        "fcn",
        num_classes,
        input_shape,
        backbone,
        blocks,
        output_stride,
        auxiliary_head,
        dropout,
    )
