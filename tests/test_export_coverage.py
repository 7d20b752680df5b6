"""Every builder with every block option exports to all three formats.

`export_model` raises unless each float artifact (SavedModel, TFLite,
ONNX) matches Keras within 1e-4 with 100 % top-1 agreement, so each case
below is a full parity check. Blocks get random (non-identity) weights
first (only the blocks: a deep net with every weight perturbed and
uncalibrated batch norm saturates its softmax, where float rounding alone
moves outputs by 1e-2): SR starts with zero memories and the
input-dependent CC variants start as the identity, which would hide a
wrong export. Batch norm is calibrated on random images
(`calibrate_batch_norm`): untrained, MobileNetV2's outputs do not depend on
its input at all, and parity would compare constants. The small nets
(every CC variant x EMP, SR, SE/CBAM, the regularisers, MobileNetV2) run in
the default suite, the deep and segmentation nets under `large`.
"""

import keras
import numpy as np
import pytest

from keras_memblocks.export import export_model
from keras_memblocks.layers import CBAM2D
from keras_memblocks.layers import EMP_NAMES
from keras_memblocks.layers import VARIANT_NAMES
from keras_memblocks.layers import ContextualConvBlock2D
from keras_memblocks.layers import SqueezeAndRemember2D
from keras_memblocks.layers import SqueezeExcite2D
from keras_memblocks.models import calibrate_batch_norm
from keras_memblocks.models import cifar_resnet
from keras_memblocks.models import cifar_vgg
from keras_memblocks.models import deeplabv3
from keras_memblocks.models import fcn
from keras_memblocks.models import insert_blocks
from keras_memblocks.models import resnet50
from keras_memblocks.models import vgg_like
from tests import layer_battery

pytestmark = pytest.mark.oldest_tensorflow

BLOCK_TYPES = (SqueezeAndRemember2D, ContextualConvBlock2D, SqueezeExcite2D, CBAM2D)
SR = {"block": "sr", "after": 3, "num_memory_blocks": 2}


def _mobilenet_v2_with_blocks():
    base = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10
    )
    model = insert_blocks(base, "sr", ["block_3_project_BN"], num_memory_blocks=2)
    return insert_blocks(model, "cc", ["block_6_project_BN", "block_13_expand_relu"])


# case name -> builder of the model to export.
CASES = {
    **{
        f"vgg_like-cc-{variant}-{emp}": (
            lambda variant=variant, emp=emp: vgg_like(
                "mnist",
                width=4,
                blocks={"block": "cc", "after": "conv", "variant": variant, "emp": emp},
            )
        )
        for variant in VARIANT_NAMES
        for emp in EMP_NAMES
        # The one-coefficient variants have no map, hence no EMP choice.
        if emp == "bilinear" or "scalar" not in variant
    },
    "vgg_like-cifar100-cc-reduced": lambda: vgg_like(
        "cifar100", width=4, blocks={"block": "cc", "after": "conv"}
    ),
    "vgg_like-cifar10-sr": lambda: vgg_like(
        "cifar10", width=4, blocks={"block": "sr", "after": "conv", "num_memory_blocks": 2}
    ),
    "cifar_resnet18-sr-se": lambda: cifar_resnet(
        18, num_classes=10, width=4, blocks=[{"block": "se", "after": "residual"}, SR]
    ),
    "cifar_resnet18-sr-cbam": lambda: cifar_resnet(
        18, num_classes=10, width=4, blocks=[{"block": "cbam", "after": "residual"}, SR]
    ),
    **{
        f"cifar_resnet18-sr-{reg}": (
            lambda reg=reg: cifar_resnet(18, num_classes=10, regularizer=reg, width=4, blocks=SR)
        )
        for reg in ("dropout", "dropout2d", "dropblock")
    },
    "cifar_resnet34-sr-module1": lambda: cifar_resnet(
        34, num_classes=10, width=4, blocks={"block": "sr", "after": 1, "num_memory_blocks": 3}
    ),
    "cifar_resnet50-sr-cbam": lambda: cifar_resnet(
        50, num_classes=10, width=4, blocks=[{"block": "cbam", "after": "residual"}, SR]
    ),
    "cifar_vgg16-sr": lambda: cifar_vgg(16, num_classes=10, blocks=SR),
    "resnet50-sr": lambda: resnet50(10, input_shape=(64, 64, 3), blocks=SR),
    "deeplabv3-sr": lambda: deeplabv3(
        5, input_shape=(32, 32, 3), blocks={"block": "sr", "after": 2, "num_memory_blocks": 2}
    ),
    "fcn-sr": lambda: fcn(
        5, input_shape=(32, 32, 3), blocks={"block": "sr", "after": 2, "num_memory_blocks": 3}
    ),
    "mobilenet_v2-sr-cc": _mobilenet_v2_with_blocks,
}
# Minutes each on 2 CPU cores: the deep and the full-resolution nets.
LARGE_CASES = {
    "cifar_resnet34-sr-module1",
    "cifar_resnet50-sr-cbam",
    "cifar_vgg16-sr",
    "resnet50-sr",
    "deeplabv3-sr",
    "fcn-sr",
    # 85 s; the CIFAR ResNet-18 rows export SR, CC, CBAM and DropBlock in make test.
    "mobilenet_v2-sr-cc",
    # SE's and CBAM's files run in every runtime in tests/test_edge_runtimes.py, and
    # the ResNet-18 with SR exports in tests/test_export.py.
    "cifar_resnet18-sr-se",
    "cifar_resnet18-sr-cbam",
    # The regularizers are inference no-ops (their layers' own tests check it); the
    # ResNet-18 with SR exports in make test with CBAM.
    "cifar_resnet18-sr-dropout",
    "cifar_resnet18-sr-dropout2d",
    "cifar_resnet18-sr-dropblock",
}

# Float32 alone moves these 1.1-1.3e-4 between TensorFlow, LiteRT and
# onnxruntime (measured on DeepLabv3 without any block), over the default 1e-4.
LOOSER_TOLERANCE = {"deeplabv3-sr": 5e-4, "fcn-sr": 5e-4}


def _marks(name):
    if name in LARGE_CASES:
        return pytest.mark.large
    # Over a minute: started first (tests/conftest.py).
    return pytest.mark.runs_first if name == "mobilenet_v2-sr-cc" else ()


@pytest.mark.parametrize("name", [pytest.param(name, marks=_marks(name)) for name in CASES])
def test_exports_with_parity(name, tmp_path):
    model = CASES[name]()
    blocks = [layer for layer in model.layers if isinstance(layer, BLOCK_TYPES)]
    assert blocks, f"{name} has no block to export"
    for block in blocks:
        layer_battery.randomize_weights(block, scale=0.2)
    shape = model.input.shape[1:]
    rng = np.random.default_rng(1)
    calibrate_batch_norm(model, rng.random((16, *shape), dtype=np.float32))
    inputs = rng.random((4, *shape), dtype=np.float32)
    # Parity means something only if the outputs depend on the input.
    assert model.predict(inputs, verbose=0).std(axis=0).max() > 1e-6
    tolerance = LOOSER_TOLERANCE.get(name, 1e-4)
    manifest = export_model(model, tmp_path / "export", parity_inputs=inputs, tolerance=tolerance)
    assert manifest["formats"] == ["saved_model", "tflite", "onnx"]
    for result in manifest["parity"].values():  # export_model enforces these; state them here too
        assert result["max_abs_diff"] <= tolerance and result["top1_agreement"] == 1.0


def test_matrix_is_complete():
    assert LARGE_CASES <= set(CASES)
    for variant in VARIANT_NAMES:
        emps = ("bilinear",) if "scalar" in variant else EMP_NAMES
        for emp in emps:
            assert f"vgg_like-cc-{variant}-{emp}" in CASES
