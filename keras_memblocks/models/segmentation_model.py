"""The graph both segmentation models share: backbone, head, optional aux head."""

import keras

from keras_memblocks.models import segmentation_heads
from keras_memblocks.models.resnet50_model import resnet50
from keras_memblocks.utils import argument_checks

BACKBONES = ("resnet50",)


def build(
    kind,
    num_classes,
    input_shape,
    backbone,
    blocks,
    output_stride,
    auxiliary_head,
    dropout,
    aspp_rates=None,
):
    num_classes = argument_checks.check_positive_int("num_classes", num_classes)
    argument_checks.check_choice("backbone", backbone, BACKBONES)
    argument_checks.check_choice("output_stride", output_stride, (8, 16))
    segmentation_heads.check_input_shape(input_shape, output_stride)
    base = resnet50(
        input_shape=input_shape, include_top=False, blocks=blocks, output_stride=output_stride
    )
    features = base.output  # (B, H/os, W/os, 2048)
    if kind == "deeplabv3":
        x = segmentation_heads.aspp(features, aspp_rates)
        outputs = segmentation_heads.classifier(
            x, num_classes, output_stride, dropout, "predictions", hidden=256
        )
    else:
        outputs = segmentation_heads.classifier(
            features, num_classes, output_stride, dropout, "predictions", hidden=512
        )
    if auxiliary_head:
        aux = segmentation_heads.classifier(
            base.pyramid_outputs["P4"], num_classes, output_stride, dropout, "aux", hidden=256
        )
        outputs = {"predictions": outputs, "aux": aux}
    model = keras.Model(base.input, outputs, name=f"{kind}_{backbone}")
    model.pyramid_outputs = base.pyramid_outputs
    return model
