"""DeepLabv3 on a dilated ResNet50 (SR paper Table IV)."""

from keras_memblocks.models import segmentation_model

BACKBONES = segmentation_model.BACKBONES


def deeplabv3(
    num_classes,
    *,
    input_shape,
    backbone="resnet50",
    blocks=None,
    output_stride=8,
    aspp_rates=None,
    auxiliary_head=False,
    dropout=0.1,
):
    """DeepLabv3: ASPP head on a dilated ResNet50, output at input resolution.

    Args:
        num_classes: number of classes (19 for Cityscapes).
        input_shape: `(H, W, 3)` with H and W divisible by `output_stride`.
        backbone: `"resnet50"` (layer names of `keras.applications`).
        blocks: blocks in the backbone, as `resnet50` places them; the
            paper put SR after module 2 for Cityscapes.
        output_stride: 8 or 16: the backbone's output resolution.
        aspp_rates: atrous rates of the three 3x3 ASPP branches; default
            (12, 24, 36) at stride 8 (the paper's), (6, 12, 18) at 16.
        auxiliary_head: add an FCN head on module 3 as a second output
            (`aux`), weighted 0.4 in the paper's training recipe.
        dropout: dropout before the classifier (0.1).

    Returns:
        A functional `keras.Model` with softmax output (B, H, W, classes)
        named `predictions` (and `aux`), and `pyramid_outputs` P2..P5.

    Examples:
        >>> from keras_memblocks.models import deeplabv3
        >>> sr = {"block": "sr", "after": 2, "num_memory_blocks": 2}
        >>> model = deeplabv3(19, input_shape=(64, 64, 3), blocks=sr)
        >>> model.output.shape
        (None, 64, 64, 19)
    """
    rates = aspp_rates or ((12, 24, 36) if output_stride == 8 else (6, 12, 18))
    return segmentation_model.build(
        "deeplabv3",
        num_classes,
        input_shape,
        backbone,
        blocks,
        output_stride,
        auxiliary_head,
        dropout,
        aspp_rates=tuple(rates),
    )
