import numpy as np
import pytest

from keras_memblocks.metrics import mean_iou
from keras_memblocks.models import count_trainable_parameters
from keras_memblocks.models import deeplabv3
from keras_memblocks.models import fcn
from tests import model_checks

pytestmark = pytest.mark.every_backend

# The SR paper's Cityscapes placement.
SR_AFTER_MODULE_2 = {"block": "sr", "after": 2, "num_memory_blocks": 3, "hidden_units": 8}


@pytest.mark.parametrize("builder", [deeplabv3, fcn])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_at_input_resolution(builder, output_stride):
    model = builder(7, input_shape=(64, 96, 3), output_stride=output_stride)
    assert model.output.shape == (None, 64, 96, 7)
    assert set(model.pyramid_outputs) == {"P2", "P3", "P4", "P5"}
    assert model.pyramid_outputs["P5"].shape[1] == 64 // output_stride


def test_aspp_rates_and_image_pooling():
    model = deeplabv3(5, input_shape=(64, 64, 3))
    rates = [model.get_layer(f"aspp_{i}_conv").dilation_rate for i in (1, 2, 3)]
    assert rates == [(12, 12), (24, 24), (36, 36)]
    assert model.get_layer("aspp_pool_upsample").output.shape == (None, 8, 8, 256)
    assert deeplabv3(5, input_shape=(64, 64, 3), output_stride=16).get_layer(
        "aspp_1_conv"
    ).dilation_rate == (6, 6)


@pytest.mark.parametrize("builder", [deeplabv3, fcn])
def test_sr_after_module_2_and_aux_head(builder):
    plain = builder(19, input_shape=(64, 64, 3))
    model = builder(19, input_shape=(64, 64, 3), blocks=SR_AFTER_MODULE_2, auxiliary_head=True)
    names = model_checks.layer_names(model)
    assert names.index("module2_sr") == names.index("conv3_block4_out") + 1
    assert model.get_layer("module2_sr").output.shape == (None, 8, 8, 512)
    assert set(model.output) == {"predictions", "aux"}
    assert model.output["aux"].shape == (None, 64, 64, 19)
    plain_with_aux = builder(19, input_shape=(64, 64, 3), auxiliary_head=True)
    sr_params = model.get_layer("module2_sr").count_params()
    assert (
        count_trainable_parameters(model) - count_trainable_parameters(plain_with_aux) == sr_params
    )
    assert count_trainable_parameters(plain_with_aux) > count_trainable_parameters(plain)


# DeepLabv3's round trip takes ~25 s on JAX and 36 s on TensorFlow: `make test`
# runs FCN's (the same SR placement and auxiliary head), `make test-large` both.
@pytest.mark.parametrize(
    "builder",
    [pytest.param(deeplabv3, marks=(pytest.mark.backends("tensorflow"), pytest.mark.large)), fcn],
)
def test_round_trip_and_jit(builder, tmp_path):
    model = builder(4, input_shape=(32, 32, 3), blocks=SR_AFTER_MODULE_2, auxiliary_head=True)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    model_checks.check_save_load_round_trip(model, x, tmp_path)
    labels = np.random.default_rng(1).integers(0, 4, (2, 32, 32))
    model_checks.check_jit_train_step(model, x, labels)


def test_mean_iou_ignores_255():
    metric = mean_iou(3)
    labels = np.array([[[0, 1], [2, 255]]])
    predicted = np.eye(3)[np.array([[[0, 1], [1, 0]]])]  # pixel (1,0) wrong, (1,1) ignored
    metric.update_state(labels, predicted)
    # IoU: class 0 = 1/1, class 1 = 1/2, class 2 = 0/1.
    np.testing.assert_allclose(float(metric.result()), (1 + 0.5 + 0) / 3, rtol=1e-6)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match=r"divisible by output_stride=8.*\(60, 64, 3\)"):
        deeplabv3(19, input_shape=(60, 64, 3))
    with pytest.raises(ValueError, match=r"Unknown backbone 'vgg'"):
        fcn(19, input_shape=(64, 64, 3), backbone="vgg")
