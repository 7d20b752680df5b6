"""The analyses on constructed cases whose answers are known, and against the
NumPy reference of the blocks."""

import json

import keras
import matplotlib
import numpy as np
import pytest

from keras_memblocks import analysis
from keras_memblocks.layers import ContextualConvBlock2D
from keras_memblocks.layers import SRBlock
from keras_memblocks.models import vgg_like
from tests import layer_battery
from tests import numpy_reference

matplotlib.use("Agg")
# The whole file needs keras_memblocks.analysis; make test runs it on TensorFlow and on JAX.
pytestmark = [pytest.mark.every_backend, pytest.mark.needs_extras("analysis")]
RNG = np.random.default_rng(0)


def sr_model(num_memory_blocks=3, hidden_units=4, channels=4, head=False):
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(channels, 3, padding="same", name="conv")(inputs)
    x = SRBlock(num_memory_blocks=num_memory_blocks, hidden_units=hidden_units, name="sr")(x)
    if head:
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, x)


def layer_weights(layer):
    return {w.name: keras.ops.convert_to_numpy(w) for w in layer.weights}


def fix_memory_weights(layer, logits):
    """The FC net ignores its input: every example gets softmax(logits)."""
    layer.hidden_kernel.assign(np.zeros(layer.hidden_kernel.shape))
    layer.logits_kernel.assign(np.zeros(layer.logits_kernel.shape))
    layer.logits_bias.assign(np.asarray(logits, "float32"))


def test_memory_usage_with_fixed_weights_is_their_softmax():
    model = sr_model()
    layer = model.get_layer("sr")
    fix_memory_weights(layer, [0.0, 1.0, 2.0])
    images = RNG.random((12, 6, 6, 3), dtype=np.float32)
    usage = analysis.memory_usage(model, images, np.repeat([0, 3, 7], 4))
    expected = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_array_equal(usage.classes, [0, 3, 7])
    np.testing.assert_allclose(usage.mean, np.tile(expected, (3, 1)), rtol=1e-6)
    np.testing.assert_allclose(usage.std, 0.0, atol=1e-7)
    assert usage.weights.shape == (12, 3) and usage.layer_name == "sr"


def test_memory_usage_and_activation_change_match_the_numpy_reference():
    model = sr_model()
    layer_battery.randomize_weights(model, scale=0.5)
    images = RNG.random((30, 6, 6, 3), dtype=np.float32)
    labels = np.arange(30) % 3
    block_input = keras.Model(model.input, model.get_layer("conv").output).predict(
        images, verbose=0
    )
    output, weights = numpy_reference.squeeze_and_remember(
        block_input, layer_weights(model.get_layer("sr"))
    )
    usage = analysis.memory_usage(model, images, labels, batch_size=7)
    change = analysis.activation_change(model, images, labels, batch_size=7)
    per_example = np.abs(output - block_input).mean(axis=(1, 2))
    for c in range(3):
        np.testing.assert_allclose(usage.mean[c], weights[labels == c].mean(0), atol=1e-5)
        np.testing.assert_allclose(usage.std[c], weights[labels == c].std(0), atol=1e-5)
        np.testing.assert_allclose(
            change.mean_abs_difference[c], per_example[labels == c].mean(0), atol=1e-5
        )
    assert usage.std.max() > 0  # the weights do depend on the input here


def test_memory_activity_reads_the_memories():
    model = sr_model(num_memory_blocks=2, channels=3)
    memory = np.zeros((2, 6, 6, 3), "float32")
    memory[0, :3] = -2.0  # half the pixels of memory 0 at |2|: activity 1
    memory[1, ..., 2] = 0.5
    model.get_layer("sr").memory.assign(memory)
    np.testing.assert_allclose(analysis.memory_activity(model), [[1, 1, 1], [0, 0, 0.5]])


def test_removal_ablation_on_a_block_that_decides_the_class():
    model = sr_model(num_memory_blocks=2, channels=2, head=True)
    model.get_layer("conv").set_weights([np.zeros((3, 3, 3, 2)), np.zeros(2)])
    layer = model.get_layer("sr")
    fix_memory_weights(layer, [0.0, 0.0])
    memory = np.zeros((2, 6, 6, 2), "float32")
    memory[..., 1] = 1.0  # the block pushes every example to class 1
    layer.memory.assign(memory)
    images = RNG.random((8, 6, 6, 3), dtype=np.float32)
    ablation = analysis.removal_ablation(model, images, np.ones(8, int))
    assert (ablation.accuracy_with, ablation.accuracy_without) == (1.0, 0.0)
    assert ablation.difference == -1.0 and ablation.removed == ["sr"]


def test_sr_analyses_reject_bad_input():
    model = sr_model()
    images = np.zeros((4, 6, 6, 3), "float32")
    with pytest.raises(ValueError, match="4 images and 3 labels"):
        analysis.memory_usage(model, images, [0, 1, 2])
    with pytest.raises(ValueError, match="integer class ids"):
        analysis.memory_usage(model, images, np.zeros(4))
    with pytest.raises(ValueError, match="no SqueezeAndRemember2D named 'conv'.*'sr'"):
        analysis.memory_usage(model, images, np.zeros(4, int), layer_name="conv")
    with pytest.raises(ValueError, match="no SqueezeAndRemember2D layer"):
        analysis.memory_activity(vgg_like("mnist", width=1))
    with pytest.raises(ValueError, match="outputs \\(4, 6, 6, 4\\)"):
        analysis.removal_ablation(model, images, np.zeros(4, int))
    inputs = keras.Input((6, 6, 2))
    two = keras.Model(inputs, SRBlock(2, name="b")(SRBlock(2, name="a")(inputs)))
    with pytest.raises(ValueError, match=r"2 SR blocks \(\['a', 'b'\]\); pass `layer_name`"):
        analysis.memory_activity(two)
    assert analysis.memory_activity(two, "b").shape == (2, 2)


def cc_model(variant="input_independent", emp="bilinear"):
    return vgg_like(
        "mnist", width=2, blocks={"block": "cc", "after": "conv", "variant": variant, "emp": emp}
    )


def test_tilt_and_magnitude_of_known_coefficients():
    model = cc_model()
    first, second = (model.get_layer(n) for n in ("stage1_conv1_cc", "stage2_conv1_cc"))
    # {a_w, b_w, a_h, b_h} for every channel; stored as (K, C).
    first.coefficients.assign(np.tile([[0.8], [1.4], [1.0], [1.2]], (1, 2)))
    second.coefficients.assign(np.tile([[1.5], [0.5], [0.6], [0.6]], (1, 8)))
    coefficients = analysis.cc_coefficients(model, np.zeros((5, 28, 28, 1)))
    result = analysis.tilt_and_magnitude(coefficients)
    assert result.layer_names == ["stage1_conv1_cc", "stage2_conv1_cc"]
    assert [len(v) for v in result.tilt_w] == [5 * 2, 5 * 8]
    for values, expected in [
        (result.tilt_w, (0.6, 1.0)),
        (result.tilt_h, (0.2, 0.0)),
        (result.magnitude_w, (0.1, 0.0)),
        (result.magnitude_h, (0.1, 0.4)),
    ]:
        for layer_values, value in zip(values, expected):
            np.testing.assert_allclose(layer_values, value, atol=1e-6)


def test_cc_coefficients_match_the_numpy_reference():
    model = cc_model(variant="reduced")
    layer_battery.randomize_weights(model, scale=0.3)
    images = RNG.random((9, 28, 28, 1), dtype=np.float32)
    result = analysis.cc_coefficients(model, images, labels=np.arange(9) % 3, batch_size=4)
    layer = model.get_layer("stage2_conv1_cc")
    block_input = keras.Model(model.input, layer.input).predict(images, verbose=0)
    expected = numpy_reference.cc_coefficients(block_input, layer_weights(layer), "reduced")
    np.testing.assert_allclose(result.coefficients[1], expected, atol=1e-5)
    assert result.emps == ["bilinear", "bilinear"]


def test_tilt_needs_bilinear_maps():
    coefficients = analysis.cc_coefficients(cc_model(emp="sine"), np.zeros((2, 28, 28, 1)))
    with pytest.raises(ValueError, match="emp='sine'"):
        analysis.tilt_and_magnitude(coefficients)
    coefficients = analysis.cc_coefficients(cc_model("scalar"), np.zeros((2, 28, 28, 1)))
    with pytest.raises(ValueError, match="1 coefficient"):
        analysis.tilt_and_magnitude(coefficients)


def test_class_difference_matrix_counts_the_distributions_that_differ():
    # 3 classes x 20 examples, 2 layers of (C=3, K=4) and (C=2, K=4): 20 distributions.
    shared = RNG.normal(size=(20, 5, 4))
    first, second = np.tile(shared[:, :3], (3, 1, 1)), np.tile(shared[:, 3:], (3, 1, 1))
    labels = np.repeat([0, 1, 2], 20)
    first[labels == 2, 0, :] += 10.0  # class 2: 4 distributions of layer 1 ...
    second[labels == 2, 1, 3] += 10.0  # ... and 1 of layer 2 shifted far away
    coefficients = analysis.CCCoefficients(["a", "b"], [first, second], ["bilinear"] * 2, labels)
    result = analysis.class_difference_matrix(coefficients)
    assert result.num_distributions == 20 and result.alpha == 0.01
    # Identical samples never differ; a shift of 10 sd always does.
    np.testing.assert_array_equal(result.counts[0, 1:], [0, 5])
    np.testing.assert_array_equal(result.counts, result.counts.T)
    assert result.counts[1, 2] == 5
    assert np.all(np.diag(result.counts) <= 1)  # halves of one class: chance level only
    with pytest.raises(ValueError, match="needs labels"):
        analysis.class_difference_matrix(analysis.CCCoefficients(["a"], [first], ["bilinear"]))
    small = analysis.CCCoefficients(["a"], [first[:6]], ["bilinear"], np.array([0] * 3 + [1] * 3))
    with pytest.raises(ValueError, match="Class 0 has 3 examples"):
        analysis.class_difference_matrix(small)


# It trains five nets through the trainer (tf.data), so it runs on TensorFlow.
@pytest.mark.backends("tensorflow")
def test_accuracy_versus_weights_trains_through_the_reproduce_path(tmp_path):
    from keras_memblocks.models import count_trainable_parameters
    from keras_memblocks.training import accuracy_versus_weights
    from keras_memblocks.training import build_model
    from keras_memblocks.training.capacity_curves import capacity_config

    quick = dict(epochs=1, max_steps_per_epoch=2, image_size=16, batch_size=16)
    grid = dict(widths=(1, 2), variants=("standard", "scalar"), seeds=(0,))
    curves = accuracy_versus_weights("digits", output_dir=tmp_path, verbose=False, **grid, **quick)
    assert curves.variants.tolist() == ["standard"] * 2 + ["scalar"] * 2
    assert curves.widths.tolist() == [1, 2] * 2 and curves.seeds.tolist() == [0] * 4
    # Each point is the cc-fig4 row's config, trained and saved by train_seeds.
    config = capacity_config("digits", 2, "scalar", layout="cifar10", recipe="digits")
    expected = count_trainable_parameters(build_model(config.replace(**quick)))
    assert curves.parameters[-1] == expected
    results = json.loads((tmp_path / "scalar_w2" / "seed_0" / "results.json").read_text())
    assert results["config"]["model_args"] == {**config.model_args}
    assert curves.accuracy[-1] == results["test"]["accuracy"]
    assert np.all((curves.accuracy >= 0) & (curves.accuracy <= 1))
    widths, parameters, mean, std = curves.summary()["scalar"]
    assert widths.tolist() == [1, 2] and mean.shape == std.shape == (2,)
    figure = analysis.plot_accuracy_versus_weights(curves)
    assert figure.axes[0].get_xscale() == "log"
    # Finished runs are read back, not trained again.
    again = accuracy_versus_weights("digits", output_dir=tmp_path, verbose=False, **grid, **quick)
    np.testing.assert_array_equal(again.accuracy, curves.accuracy)
    swapped = accuracy_versus_weights(
        "digits", widths=(1,), variants=("standard",), swap_train_test=True, verbose=False, **quick
    )
    assert swapped.swapped
    with pytest.raises(ValueError, match="Unknown variants \\['huge'\\]"):
        accuracy_versus_weights(variants=("huge",))


def test_the_capacity_curves_moved_to_training_say_where():
    for name in ("accuracy_versus_weights", "CapacityCurves"):
        with pytest.raises(AttributeError, match=f"from keras_memblocks.training import {name}"):
            getattr(analysis, name)


def test_every_plot_renders(tmp_path):
    sr = sr_model(head=True)
    layer_battery.randomize_weights(sr, scale=0.3)
    images = RNG.random((20, 6, 6, 3), dtype=np.float32)
    labels = np.arange(20) % 4
    cc = cc_model("reduced")
    layer_battery.randomize_weights(cc, scale=0.3)
    digits = RNG.random((24, 28, 28, 1), dtype=np.float32)
    coefficients = analysis.cc_coefficients(cc, digits, np.arange(24) % 3)
    figures = {
        "memory_usage": analysis.plot_memory_usage(
            analysis.memory_usage(sr, images, labels), class_names="abcd"
        ),
        "memory_activity": analysis.plot_memory_activity(analysis.memory_activity(sr)),
        "activation_change": analysis.plot_activation_change(
            analysis.activation_change(sr, images, labels)
        ),
        "removal": analysis.plot_removal_ablation(analysis.removal_ablation(sr, images, labels)),
        "tilt": analysis.plot_tilt_and_magnitude(analysis.tilt_and_magnitude(coefficients)),
        "classes": analysis.plot_class_difference_matrix(
            analysis.class_difference_matrix(coefficients)
        ),
        "maps": analysis.plot_excitation_maps(cc, digits[0], "stage2_conv1_cc", channels=3),
        "emps": analysis.plot_excitation_map_producers(),
    }
    assert len(figures["memory_usage"].axes) == 4
    assert figures["memory_usage"].axes[0].get_title() == "class a"
    assert len(figures["classes"].axes[0].texts) == 9
    assert len(figures["maps"].axes) == 3 * 3 + 1  # 3 rows of 3 channels, one colour bar
    for name, figure in figures.items():
        figure.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert isinstance(cc.get_layer("stage1_conv1_cc"), ContextualConvBlock2D)
