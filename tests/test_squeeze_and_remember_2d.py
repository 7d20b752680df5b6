import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras.ops import convert_to_numpy

from keras_memblocks.layers import SqueezeAndRemember2D
from keras_memblocks.layers import SRBlock
from tests import layer_battery
from tests import numpy_reference

pytestmark = pytest.mark.every_backend


def randomize(layer, seed=0, scale=0.5):
    layer_battery.randomize_weights(layer, seed, scale, keep_initial=False)


@pytest.mark.parametrize(
    "init_kwargs",
    [
        dict(num_memory_blocks=3, hidden_units=4),
        dict(
            num_memory_blocks=2,
            hidden_units=5,
            hidden_activation="relu",
            use_bias=False,
            return_memory_weights=True,
        ),
        dict(num_memory_blocks=4, hidden_units=3, data_format="channels_first"),
    ],
    ids=["default", "relu_nobias_weights", "channels_first"],
)
def test_layer_battery(init_kwargs, tmp_path):
    shape = (6, 5, 8) if init_kwargs.get("data_format") != "channels_first" else (8, 6, 5)
    layer_battery.run_layer_battery(SqueezeAndRemember2D, init_kwargs, shape, tmp_path)


def test_alias():
    assert SRBlock is SqueezeAndRemember2D


def test_identity_at_initialisation():
    x = layer_battery.random_inputs((7, 7, 16))
    layer = SqueezeAndRemember2D(num_memory_blocks=5, hidden_units=4)
    np.testing.assert_array_equal(convert_to_numpy(layer(x)), x)
    assert np.all(convert_to_numpy(layer.memory) == 0)


def test_initialisation_bounds_follow_fan_in():
    layer = SqueezeAndRemember2D(num_memory_blocks=3, hidden_units=16)
    layer.build((None, 10, 10, 64))
    w = layer_battery.weights_by_name(layer)
    for name, fan_in in [
        ("squeeze_kernel", 64),
        ("hidden_kernel", 100),
        ("hidden_bias", 100),
        ("logits_kernel", 16),
        ("logits_bias", 16),
    ]:
        bound = np.sqrt(1.0 / fan_in)
        assert np.abs(w[name]).max() <= bound, name
        # Uniform over the whole interval, not a narrower one.
        if w[name].size >= 64:
            assert np.abs(w[name]).max() > 0.8 * bound, name


@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_numpy_reference(activation, use_bias):
    x = layer_battery.random_inputs((5, 4, 6))
    layer = SqueezeAndRemember2D(
        num_memory_blocks=3,
        hidden_units=7,
        hidden_activation=activation,
        use_bias=use_bias,
        return_memory_weights=True,
    )
    layer.build(x.shape)
    randomize(layer)
    out, mem_weights = layer(x)
    ref_out, ref_weights = numpy_reference.squeeze_and_remember(
        x, layer_battery.weights_by_name(layer), activation, use_bias
    )
    np.testing.assert_allclose(convert_to_numpy(out), ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(convert_to_numpy(mem_weights), ref_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        convert_to_numpy(layer.compute_memory_weights(x)), ref_weights, rtol=1e-5, atol=1e-6
    )


def test_output_minus_input_is_a_convex_combination_of_memories():
    x = layer_battery.random_inputs((4, 4, 3), batch=8)
    layer = SqueezeAndRemember2D(num_memory_blocks=4, hidden_units=5, return_memory_weights=True)
    layer.build(x.shape)
    randomize(layer, seed=3)
    out, weights = (convert_to_numpy(t) for t in layer(x))
    memory = convert_to_numpy(layer.memory)  # (P, H, W, C)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    delta = out - x
    # Inside the convex hull of the memories, element by element ...
    assert np.all(delta >= memory.min(axis=0) - 1e-5)
    assert np.all(delta <= memory.max(axis=0) + 1e-5)
    # ... and exactly the weighted sum.
    np.testing.assert_allclose(delta, np.einsum("bp,phwc->bhwc", weights, memory), atol=1e-5)


def test_channels_first_equals_channels_last():
    x = layer_battery.random_inputs((5, 6, 4))
    last = SqueezeAndRemember2D(3, 4, data_format="channels_last")
    first = SqueezeAndRemember2D(3, 4, data_format="channels_first")
    last.build(x.shape)
    first.build((None, 4, 5, 6))
    randomize(last)
    for w_last, w_first in zip(last.weights, first.weights):
        value = convert_to_numpy(w_last)
        if w_last.name == "memory":
            value = value.transpose(0, 3, 1, 2)
        w_first.assign(value)
    out_first = convert_to_numpy(first(x.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(
        out_first.transpose(0, 2, 3, 1), convert_to_numpy(last(x)), atol=1e-5
    )


@pytest.mark.parametrize(
    "height,width,channels,units,memories,use_bias",
    [
        (14, 14, 1024, 16, 2, False),
        (14, 14, 1024, 16, 10, False),
        (8, 8, 256, 8, 12, True),
        (3, 5, 7, 2, 1, True),
    ],
)
def test_parameter_count_matches_paper_formula(height, width, channels, units, memories, use_bias):
    layer = SqueezeAndRemember2D(memories, units, use_bias=use_bias)
    layer.build((None, height, width, channels))
    assert layer.count_params() == numpy_reference.sr_parameter_count(
        height, width, channels, units, memories, use_bias
    )


def test_paper_worked_example_resnet50_module3():
    # Spec: 14x14x1024, U=16, P=2 adds 405,600 (biases not counted); P=10 2,011,360.
    for memories, expected in [(2, 405_600), (10, 2_011_360)]:
        layer = SqueezeAndRemember2D(memories, 16, use_bias=False)
        layer.build((None, 14, 14, 1024))
        assert layer.count_params() == expected


@pytest.mark.property
@given(
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    channels=st.integers(1, 5),
    units=st.integers(1, 6),
    memories=st.integers(1, 5),
    activation=st.sampled_from([None, "relu", "sigmoid"]),
    use_bias=st.booleans(),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_property_matches_reference(
    height, width, channels, units, memories, activation, use_bias, batch, seed
):
    x = layer_battery.random_inputs((height, width, channels), batch=batch, seed=seed)
    layer = SqueezeAndRemember2D(memories, units, hidden_activation=activation, use_bias=use_bias)
    layer.build(x.shape)
    randomize(layer, seed)
    ref, _ = numpy_reference.squeeze_and_remember(
        x, layer_battery.weights_by_name(layer), activation, use_bias
    )
    np.testing.assert_allclose(convert_to_numpy(layer(x)), ref, rtol=1e-4, atol=1e-4)
    assert layer.count_params() == numpy_reference.sr_parameter_count(
        height, width, channels, units, memories, use_bias
    )


# === Bad input ===


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_memory_blocks=0), r"num_memory_blocks.*>= 1.*0"),
        (dict(num_memory_blocks=2.5), r"num_memory_blocks.*2.5"),
        (dict(hidden_units=0), r"hidden_units.*>= 1.*0"),
        (dict(data_format="channels_middle"), r"data_format.*'channels_middle'.*channels_last"),
        (dict(hidden_activation="no_such_activation"), r"no_such_activation"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SqueezeAndRemember2D(**kwargs)


def test_non_4d_input_raises():
    with pytest.raises(ValueError, match=r"4-D feature map.*\(None, 8, 8\)"):
        SqueezeAndRemember2D()(keras.Input((8, 8)))


def test_unknown_spatial_size_raises():
    with pytest.raises(ValueError, match=r"height and width.*known.*None, None"):
        SqueezeAndRemember2D()(keras.Input((None, None, 8)))


def test_other_spatial_size_after_build_raises():
    layer = SqueezeAndRemember2D()
    layer(np.zeros((1, 6, 6, 3), "float32"))
    with pytest.raises(
        ValueError, match=r"built for inputs with \(H, W, C\)=\(6, 6, 3\).*\(8, 8, 3\)"
    ):
        layer(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match=r"\(6, 6, 4\)"):
        layer(np.zeros((1, 6, 6, 4), "float32"))


def test_data_format_mismatch_raises():
    # channels_first with a channels_last-shaped input of unknown channel axis 1.
    with pytest.raises(
        ValueError, match=r"channel axis.*channels_first.*pass data_format='channels_last'"
    ):
        SqueezeAndRemember2D(data_format="channels_first")(keras.Input((None, 8, 3)))
