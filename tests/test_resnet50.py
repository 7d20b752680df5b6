import keras
import numpy as np
import pytest

from keras_memblocks.models import copy_weights_by_name
from keras_memblocks.models import count_trainable_parameters
from keras_memblocks.models import resnet50
from tests import model_checks

pytestmark = pytest.mark.every_backend


def weight_signature(model):
    return sorted((w.path.split("/")[0], w.name, tuple(w.shape)) for w in model.weights)


def test_same_graph_and_names_as_keras_applications():
    ours = resnet50()
    reference = keras.applications.ResNet50(weights=None)
    assert weight_signature(ours) == weight_signature(reference)
    copy_weights_by_name(reference, ours)
    x = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32)
    np.testing.assert_allclose(
        ours.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_weights_file_of_keras_applications_loads_by_name(tmp_path):
    reference = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    path = tmp_path / "resnet50.weights.h5"
    reference.save_weights(path)
    model = resnet50(
        num_classes=10,
        input_shape=(64, 64, 3),
        weights=str(path),
        blocks={"block": "sr", "after": 3, "num_memory_blocks": 2, "hidden_units": 16},
    )
    x = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32)
    # SR starts as the identity, so the outputs are the reference's.
    np.testing.assert_allclose(
        model.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("memories,percent", [(2, 1.59), (10, 7.87)])
def test_sr_overhead_matches_paper(memories, percent):
    # Table III: SR after module 3 with U = 16. The paper's count (eq. 1)
    # has no biases; ours are U + P more. Both within 0.02 points.
    base = count_trainable_parameters(resnet50())
    model = resnet50(
        blocks={"block": "sr", "after": 3, "num_memory_blocks": memories, "hidden_units": 16}
    )
    added = count_trainable_parameters(model) - base
    assert added == {2: 405_600, 10: 2_011_360}[memories] + 16 + memories
    assert abs(100 * added / base - percent) <= 0.02


@pytest.mark.parametrize(
    "output_stride,sides", [(32, (16, 8, 4, 2)), (16, (16, 8, 4, 4)), (8, (16, 8, 8, 8))]
)
def test_output_stride_and_pyramid(output_stride, sides):
    model = resnet50(include_top=False, input_shape=(64, 64, 3), output_stride=output_stride)
    got = {k: v.shape[1] for k, v in model.pyramid_outputs.items()}
    assert got == dict(zip(("P2", "P3", "P4", "P5"), sides))
    assert model.output.shape == (None, sides[-1], sides[-1], 2048)


def test_regularizer_and_sr_placement():
    model = resnet50(
        input_shape=(64, 64, 3),
        num_classes=5,
        regularizer="dropout2d",
        blocks={"block": "sr", "after": 4, "num_memory_blocks": 2},
    )
    names = model_checks.layer_names(model)
    assert names.index("module4_sr") == names.index("module4_dropout2d") + 1
    assert names.index("module3_dropout2d") == names.index("conv4_block6_out") + 1


def test_round_trip_and_jit(tmp_path):
    model = resnet50(
        num_classes=10,
        input_shape=(32, 32, 3),
        blocks={"block": "sr", "after": 3, "num_memory_blocks": 2, "hidden_units": 16},
    )
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    model_checks.check_save_load_round_trip(model, x, tmp_path)
    model_checks.check_jit_train_step(model, x, np.array([1, 2]))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"output_stride.*4"):
        resnet50(output_stride=4)
    with pytest.raises(ValueError, match=r"resnet50 places blocks after module numbers 1..4"):
        resnet50(blocks={"block": "sr", "after": 0})
