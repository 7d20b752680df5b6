import dataclasses

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras.ops import convert_to_numpy

from keras_memblocks.layers import EMP_NAMES
from keras_memblocks.layers import VARIANT_NAMES
from keras_memblocks.layers import CCBlock
from keras_memblocks.layers import ContextualConvBlock2D
from keras_memblocks.layers import set_cc_formulation
from keras_memblocks.layers.cc_parts import CC_FORMULATIONS
from keras_memblocks.layers.contextual_conv_block_2d import nearest_indices
from tests import layer_battery
from tests import numpy_reference

pytestmark = pytest.mark.every_backend

SPATIAL_VARIANTS = [v for v in VARIANT_NAMES if "scalar" not in v]
SCALAR_VARIANTS = ["scalar", "input_independent_scalar"]
# (variant, emp) pairs: every EMP with every 4-coefficient variant.
ALL_CONFIGS = [(v, e) for v in SPATIAL_VARIANTS for e in EMP_NAMES] + [
    (v, "bilinear") for v in SCALAR_VARIANTS
]
SMALL = dict(ch_units=(5, 3))


def randomize(layer, seed=0, scale=0.5):
    layer_battery.randomize_weights(layer, seed, scale, keep_initial=False)


def built_layer(variant, emp, input_shape, seed=0, scale=0.5, **kwargs):
    layer = ContextualConvBlock2D(variant, emp=emp, **{**SMALL, **kwargs})
    layer.build((None, *input_shape))
    randomize(layer, seed, scale)
    return layer


@pytest.mark.parametrize(
    "init_kwargs",
    [dict(variant=v, **SMALL) for v in VARIANT_NAMES]
    + [
        dict(variant="reduced", emp="gaussian"),
        dict(variant="reduced", emp="sine"),
        dict(variant="full", data_format="channels_first", **SMALL),
        dict(variant="reduced", grid_size=3, use_bias=False, ch_activation="tanh"),
    ],
    ids=list(VARIANT_NAMES) + ["gaussian", "sine", "full_channels_first", "grid3_nobias"],
)
def test_layer_battery(init_kwargs, tmp_path):
    shape = (6, 5, 4) if init_kwargs.get("data_format") != "channels_first" else (4, 6, 5)
    layer_battery.run_layer_battery(ContextualConvBlock2D, init_kwargs, shape, tmp_path)


def test_alias():
    assert CCBlock is ContextualConvBlock2D


# "auto" (the default) is checked on every backend; each fixed form against the
# reference on TensorFlow (its equivalence test below runs on every backend).
FORMULATIONS = [
    name if name == "auto" else pytest.param(name, marks=pytest.mark.backends("tensorflow"))
    for name in CC_FORMULATIONS
]


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("variant,emp", ALL_CONFIGS)
@pytest.mark.parametrize("shape", [(13, 17, 3), (6, 9, 2)], ids=["downsampled", "small"])
def test_matches_numpy_reference(variant, emp, shape, formulation):
    x = layer_battery.random_inputs(shape)
    layer = built_layer(variant, emp, shape)
    layer.formulation = formulation
    ref_out, ref_map, ref_coefficients = numpy_reference.contextual_conv(
        x, layer_battery.weights_by_name(layer), variant, emp, ch_activation="relu"
    )
    for training in (False, True):
        np.testing.assert_allclose(
            convert_to_numpy(layer(x, training=training)), ref_out, rtol=1e-4, atol=1e-5
        )
    np.testing.assert_allclose(
        convert_to_numpy(layer.compute_excitation_map(x)), ref_map, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        convert_to_numpy(layer.compute_coefficients(x)),
        ref_coefficients,
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("variant", ["reduced", "full", "full_no_mix", "full_no_ch", "scalar"])
def test_multiply_sum_formulation_in_channels_first_and_at_any_size(variant):
    # The pixel-major layers read a channels_first grid through one swap,
    # and the any-size grid through the gather of training (sides no
    # shorter than the grid, so the any-size block has the same weights).
    x = layer_battery.random_inputs((13, 12, 3))
    last = built_layer(variant, "bilinear", (13, 12, 3))
    last.formulation = "batched_matmul"
    first = ContextualConvBlock2D(
        variant, data_format="channels_first", formulation="multiply_sum", **SMALL
    )
    first.build((None, 3, 13, 12))
    first.set_weights(last.get_weights())
    any_size = ContextualConvBlock2D(variant, formulation="multiply_sum", **SMALL)
    any_size.build((None, None, None, 3))
    any_size.set_weights(last.get_weights())
    expected = convert_to_numpy(last(x))
    for training in (False, True):
        out = convert_to_numpy(first(x.transpose(0, 3, 1, 2), training=training))
        np.testing.assert_allclose(out.transpose(0, 2, 3, 1), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            convert_to_numpy(any_size(x, training=training)), expected, rtol=1e-5, atol=1e-5
        )


def test_the_formulation_is_an_argument_saved_with_the_block():
    block = ContextualConvBlock2D(formulation="batched_matmul")
    assert ContextualConvBlock2D.from_config(block.get_config()).formulation == "batched_matmul"
    assert ContextualConvBlock2D().formulation == "auto"
    with pytest.raises(ValueError, match="formulation"):
        ContextualConvBlock2D(formulation="einsum")
    inputs = keras.Input((8, 8, 3))
    inner = keras.Model(inputs, ContextualConvBlock2D()(inputs))
    outer_inputs = keras.Input((8, 8, 3))
    outer = keras.Model(outer_inputs, ContextualConvBlock2D()(inner(outer_inputs)))
    assert set_cc_formulation(outer, "multiply_sum") == 2
    with pytest.raises(ValueError, match="formulation"):
        set_cc_formulation(outer, "einsum")


def test_the_removed_context_manager_says_what_to_write_instead():
    from keras_memblocks.layers import cc_formulation
    from keras_memblocks.layers import current_cc_formulation

    with pytest.raises(RuntimeError, match=r"ContextualConvBlock2D\(formulation='multiply_sum'\)"):
        cc_formulation("multiply_sum")
    with pytest.raises(RuntimeError, match="formulation"):
        current_cc_formulation()


@pytest.mark.parametrize(
    "variant,emp",
    [
        ("reduced", "bilinear"),
        ("full_no_ch", "sine"),
        ("scalar", "bilinear"),
        ("input_independent", "gaussian"),
    ],
)
def test_channels_first_equals_channels_last(variant, emp):
    x = layer_battery.random_inputs((12, 7, 3))
    last = built_layer(variant, emp, (12, 7, 3))
    first = ContextualConvBlock2D(variant, emp=emp, data_format="channels_first", **SMALL)
    first.build((None, 3, 12, 7))
    first.set_weights(last.get_weights())
    out = convert_to_numpy(first(x.transpose(0, 3, 1, 2))).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out, convert_to_numpy(last(x)), atol=1e-6)


@pytest.mark.backends("tensorflow")
@pytest.mark.parametrize("length", [1, 5, 11, 12, 16, 22, 32, 33, 57, 224])
def test_nearest_indices_match_tf_image_resize(length):
    import tensorflow as tf

    # A third-party reference for the sampling: TF's nearest resize.
    grid = min(11, length)
    image = np.arange(length, dtype="float32").reshape(1, length, 1, 1)
    resized = tf.image.resize(image, (grid, 1), method="nearest").numpy().ravel()
    np.testing.assert_array_equal(nearest_indices(length, 11), resized.astype("int32"))


def test_identity_at_initialisation_for_input_dependent_variants():
    x = layer_battery.random_inputs((12, 12, 4))
    for variant in VARIANT_NAMES:
        if variant == "input_independent":
            continue  # covered below per EMP
        layer = ContextualConvBlock2D(variant, **SMALL)
        np.testing.assert_allclose(convert_to_numpy(layer(x)), x, atol=1e-6, err_msg=variant)
    for emp in ("bilinear", "sine"):
        layer = ContextualConvBlock2D("input_independent", emp=emp)
        np.testing.assert_allclose(convert_to_numpy(layer(x)), x, atol=1e-6, err_msg=emp)


@pytest.mark.parametrize("variant", ["reduced", "full", "full_no_mix", "full_no_ch"])
def test_bilinear_map_is_rank_one_with_factors_in_range(variant):
    x = layer_battery.random_inputs((15, 9, 3), batch=3)
    layer = built_layer(variant, "bilinear", (15, 9, 3), scale=2.0)
    coefficients = convert_to_numpy(layer.compute_coefficients(x))
    assert coefficients.min() >= 0.5 and coefficients.max() <= 1.5
    excitation = convert_to_numpy(layer.compute_excitation_map(x))  # (B, H, W, C)
    for b in range(3):
        for c in range(3):
            singular = np.linalg.svd(excitation[b, :, :, c].astype("float64"), compute_uv=False)
            assert singular[1] <= 1e-5 * singular[0]
    # Each factor of the product lies in [0.5, 1.5], so the map in [0.25, 2.25].
    assert excitation.min() >= 0.25 - 1e-6 and excitation.max() <= 2.25 + 1e-6
    # The corner (0, 0) is a_h * a_w exactly.
    np.testing.assert_allclose(
        excitation[:, 0, 0, :], coefficients[..., 0] * coefficients[..., 2], rtol=1e-5
    )


@pytest.mark.parametrize("variant", ["reduced", "scalar", "full_no_mix"])
def test_per_channel_variants_keep_channels_apart(variant):
    x = layer_battery.random_inputs((12, 12, 4))
    layer = built_layer(variant, "bilinear", (12, 12, 4))
    before = convert_to_numpy(layer.compute_excitation_map(x))
    perturbed = x.copy()
    perturbed[..., 2] += 3.0 * np.random.default_rng(1).normal(size=perturbed[..., 2].shape)
    after = convert_to_numpy(layer.compute_excitation_map(perturbed))
    others = [0, 1, 3]
    np.testing.assert_array_equal(after[..., others], before[..., others])
    assert not np.allclose(after[..., 2], before[..., 2])


@pytest.mark.parametrize("variant", ["full", "full_no_ch"])
def test_mix_variants_mix_channels(variant):
    x = layer_battery.random_inputs((12, 12, 4))
    layer = built_layer(variant, "bilinear", (12, 12, 4))
    before = convert_to_numpy(layer.compute_excitation_map(x))
    perturbed = x.copy()
    perturbed[..., 2] += 3.0
    after = convert_to_numpy(layer.compute_excitation_map(perturbed))
    for c in (0, 1, 3):
        assert not np.allclose(after[..., c], before[..., c]), c


@pytest.mark.parametrize(
    "variant,emp",
    [("input_independent", e) for e in EMP_NAMES] + [("input_independent_scalar", "bilinear")],
)
def test_input_independent_maps_ignore_the_input(variant, emp):
    layer = built_layer(variant, emp, (10, 8, 3))
    first, second = (
        convert_to_numpy(layer.compute_excitation_map(x))
        for x in (
            layer_battery.random_inputs((10, 8, 3), seed=1),
            layer_battery.random_inputs((10, 8, 3), seed=2),
        )
    )
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, 1.0)  # a real map, not the identity


def test_scalar_variant_has_no_spatial_selectivity():
    layer = built_layer("scalar", "bilinear", (10, 8, 3))
    x = layer_battery.random_inputs((10, 8, 3))
    excitation = convert_to_numpy(layer.compute_excitation_map(x))
    np.testing.assert_array_equal(excitation, excitation[:, :1, :1, :] * np.ones_like(excitation))


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("shape", [(32, 32, 8), (8, 4, 16), (11, 40, 3)])
def test_parameter_count(variant, use_bias, shape):
    layer = ContextualConvBlock2D(variant, use_bias=use_bias, **SMALL)
    layer.build((None, *shape))
    assert layer.count_params() == numpy_reference.cc_parameter_count(
        variant, *shape, ch_units=SMALL["ch_units"], use_bias=use_bias
    )


def test_paper_cifar100_block_parameters():
    # Spec: reduced blocks after all 8 convs of the c=32 CIFAR-100 net add
    # 1,511,428 - 1,316,356 = 195,072 parameters.
    total = 0
    for side, channels in [
        (32, 32),
        (32, 32),
        (16, 64),
        (16, 64),
        (8, 128),
        (8, 128),
        (4, 256),
        (4, 256),
    ]:
        layer = ContextualConvBlock2D("reduced")
        layer.build((None, side, side, channels))
        total += layer.count_params()
    assert total == 1_511_428 - 1_316_356


@pytest.mark.property
@given(
    variant=st.sampled_from(VARIANT_NAMES),
    emp=st.sampled_from(EMP_NAMES),
    height=st.integers(1, 14),
    width=st.integers(1, 14),
    channels=st.integers(1, 4),
    grid_size=st.integers(1, 12),
    batch=st.integers(1, 3),
    use_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_matches_reference(
    variant, emp, height, width, channels, grid_size, batch, use_bias, seed
):
    if "scalar" in variant:
        emp = "bilinear"
    shape = (height, width, channels)
    x = layer_battery.random_inputs(shape, batch=batch, seed=seed)
    layer = ContextualConvBlock2D(variant, emp=emp, grid_size=grid_size, use_bias=use_bias, **SMALL)
    layer.build((None, *shape))
    randomize(layer, seed)
    ref, _, _ = numpy_reference.contextual_conv(
        x, layer_battery.weights_by_name(layer), variant, emp, grid_size, "relu", use_bias
    )
    np.testing.assert_allclose(convert_to_numpy(layer(x)), ref, rtol=1e-4, atol=1e-4)
    assert layer.count_params() == numpy_reference.cc_parameter_count(
        variant, *shape, grid_size=grid_size, ch_units=SMALL["ch_units"], use_bias=use_bias
    )


# === Bad input ===


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(variant="reduce"), r"Unknown variant 'reduce'.*'reduced', 'full'"),
        (dict(emp="cubic"), r"Unknown emp 'cubic'.*'bilinear', 'gaussian', 'sine'"),
        (dict(variant="scalar", emp="sine"), r"variant='scalar'.*emp='sine'"),
        (dict(grid_size=0), r"grid_size.*>= 1.*0"),
        (dict(ch_units=()), r"ch_units"),
        (dict(ch_units=(4, 0)), r"ch_units.*0"),
        (dict(data_format="NHWC"), r"data_format.*'NHWC'"),
        (dict(ch_activation="nope"), r"nope"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ContextualConvBlock2D(**kwargs)


def test_non_4d_input_raises():
    with pytest.raises(ValueError, match=r"4-D feature map"):
        ContextualConvBlock2D()(keras.Input((8, 8, 8, 3)))


@pytest.mark.parametrize("variant,emp", ALL_CONFIGS)
def test_any_size_block_matches_numpy_reference_at_every_size(variant, emp):
    # Built for (None, None, C): the grid follows each call's size (a side
    # shorter than the grid repeats pixels) and the map uses normalised
    # positions; the same weights serve every size.
    layer = ContextualConvBlock2D(variant, emp=emp, **SMALL)
    layer.build((None, None, None, 3))
    randomize(layer)
    weights = layer_battery.weights_by_name(layer)
    for shape in [(13, 17, 3), (24, 20, 3), (6, 9, 3)]:
        x = layer_battery.random_inputs(shape)
        expected, _, coefficients = numpy_reference.contextual_conv(
            x, weights, variant, emp, ch_activation="relu", any_size=True
        )
        for training in (False, True):
            np.testing.assert_allclose(
                convert_to_numpy(layer(x, training=training)), expected, rtol=1e-4, atol=1e-5
            )
        np.testing.assert_allclose(
            convert_to_numpy(layer.compute_coefficients(x)), coefficients, rtol=1e-4, atol=1e-5
        )


def test_any_size_block_shares_weights_with_fixed_size_blocks():
    # At sizes no smaller than the grid, a block built for any size and one
    # built for a fixed size hold the same weights and compute the same.
    fixed = built_layer("reduced", "bilinear", (24, 20, 3))
    anywhere = ContextualConvBlock2D("reduced", **SMALL)
    anywhere.build((None, None, None, 3))
    anywhere.set_weights(fixed.get_weights())
    x = layer_battery.random_inputs((24, 20, 3))
    np.testing.assert_allclose(
        convert_to_numpy(anywhere(x)), convert_to_numpy(fixed(x)), rtol=1e-6, atol=1e-6
    )
    assert anywhere.count_params() == fixed.count_params()


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_any_size_model_trains_and_reloads(data_format, tmp_path):
    # A functional model with unknown height and width: fit at one size,
    # save, reload and run at another.
    shape = (None, None, 3) if data_format == "channels_last" else (3, None, None)
    inputs = keras.Input(shape)
    # The block on the input itself: TensorFlow's CPU kernels run a channels_first
    # Conv2D only through oneDNN (CPUs with AVX-512), and the block is what is tested.
    features = ContextualConvBlock2D(data_format=data_format, name="cc")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(data_format=data_format)(features)
    model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    randomize(model.get_layer("cc"))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train_shape = (16, 16, 3) if data_format == "channels_last" else (3, 16, 16)
    model.fit(layer_battery.random_inputs(train_shape, batch=4), np.array([0, 1, 0, 1]), verbose=0)
    run_shape = (30, 22, 3) if data_format == "channels_last" else (3, 30, 22)
    x = layer_battery.random_inputs(run_shape)
    path = tmp_path / "any_size.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        convert_to_numpy(reloaded(x)), convert_to_numpy(model(x)), rtol=1e-5, atol=1e-6
    )


def test_other_size_after_build_raises():
    layer = ContextualConvBlock2D()
    layer(np.zeros((1, 12, 12, 3), "float32"))
    with pytest.raises(ValueError, match=r"\(12, 12, 3\).*\(16, 16, 3\)"):
        layer(np.zeros((1, 16, 16, 3), "float32"))


def test_data_format_mismatch_raises():
    with pytest.raises(ValueError, match=r"channels_last.*None.*pass data_format='channels_first'"):
        ContextualConvBlock2D(data_format="channels_last")(keras.Input((3, 16, None)))


@pytest.mark.parametrize("variant,emp", ALL_CONFIGS)
def test_training_and_inference_formulations_agree(variant, emp):
    # The bilinear profiles are a basis matmul at inference and element-wise
    # ramps in training (speed); the numbers must not depend on it.
    x = layer_battery.random_inputs((13, 9, 3))
    layer = built_layer(variant, emp, (13, 9, 3))
    np.testing.assert_allclose(
        convert_to_numpy(layer(x, training=True)),
        convert_to_numpy(layer(x, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("variant,emp", ALL_CONFIGS)
def test_training_gradients_match_autodiff_of_the_inference_formulation(variant, emp, data_format):
    # Training has its own formulation (batch-dependent sampling indices,
    # ramps instead of the basis matmul, and for the bilinear EMP a
    # closed-form backward); autodiff of the inference formulation is the
    # independent reference for its gradients.
    shape = (13, 9, 3) if data_format == "channels_last" else (3, 13, 9)
    x = layer_battery.random_inputs(shape, batch=3)
    weights = np.random.default_rng(1).standard_normal((3, *shape)).astype("float32")
    layer = built_layer(variant, emp, shape, data_format=data_format)
    # The same contractions both ways (the multiply-and-sum form has its own
    # reference test), so that only the map's formulation differs.
    layer.formulation = "batched_matmul"
    variables = layer.trainable_variables

    def loss(training):
        return lambda inputs: keras.ops.sum(
            layer(inputs, training=training) * keras.ops.convert_to_tensor(weights)
        )

    for trained, reference in zip(
        layer_battery.gradients(loss(True), x, variables),
        layer_battery.gradients(loss(False), x, variables),
    ):
        np.testing.assert_allclose(trained, reference, rtol=1e-4, atol=1e-5)


def test_bilinear_gradient_matches_finite_differences_of_the_numpy_reference():
    # The closed-form backward against the NumPy reference, float64 central
    # differences, for sampled input entries and every head weight.
    shape = (13, 9, 3)
    x = layer_battery.random_inputs(shape, batch=2)
    weights = np.random.default_rng(1).standard_normal((2, *shape))
    layer = built_layer("reduced", "bilinear", shape)
    reference_weights = {
        k: v.astype("float64") for k, v in layer_battery.weights_by_name(layer).items()
    }

    def reference_loss(inputs, weights_by_name):
        out, _, _ = numpy_reference.contextual_conv(inputs, weights_by_name, "reduced")
        return float(np.sum(out * weights))

    grads = layer_battery.gradients(
        lambda inputs: keras.ops.sum(
            layer(inputs, training=True) * keras.ops.convert_to_tensor(weights, "float32")
        ),
        x,
        [layer.head_kernel, layer.head_bias],
    )
    step = 1e-5
    rng = np.random.default_rng(2)
    x64 = x.astype("float64")
    for index in [tuple(rng.integers(0, n) for n in x.shape) for _ in range(12)]:
        plus, minus = x64.copy(), x64.copy()
        plus[index] += step
        minus[index] -= step
        expected = (
            reference_loss(plus, reference_weights) - reference_loss(minus, reference_weights)
        ) / (2 * step)
        np.testing.assert_allclose(grads[0][index], expected, rtol=2e-3, atol=2e-4)
    for grad, name in zip(grads[1:], ["coefficient_kernel", "coefficient_bias"]):
        for index in [tuple(rng.integers(0, n) for n in grad.shape) for _ in range(8)]:
            shifted = {}
            for sign in (1, -1):
                moved = dict(reference_weights)
                moved[name] = moved[name].copy()
                moved[name][index] += sign * step
                shifted[sign] = reference_loss(x64, moved)
            expected = (shifted[1] - shifted[-1]) / (2 * step)
            np.testing.assert_allclose(grad[index], expected, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_inference_gather_samples_the_same_grid(data_format):
    # Inference samples the grid with one constant-index gather, training
    # with batch-dependent indices (its gradient is cheaper); same pixels.
    shape = (15, 20, 3) if data_format == "channels_last" else (3, 15, 20)
    x = layer_battery.random_inputs(shape, batch=3)
    layer = built_layer("reduced", "bilinear", shape, data_format=data_format)
    layer.formulation = "batched_matmul"  # one contraction form: only the gathers differ
    np.testing.assert_allclose(
        convert_to_numpy(layer._raw_coefficients(x, training=True)),
        convert_to_numpy(layer._raw_coefficients(x, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_every_weight_attribute_exists_and_none_where_unused(variant):
    from keras_memblocks.layers.cc_parts import VARIANTS

    layer = ContextualConvBlock2D(variant, **SMALL)
    layer.build((None, 16, 16, 3))
    spec = VARIANTS[variant]
    assert layer.spec is spec and layer.spec.name == variant
    independent = not spec.input_dependent
    assert (layer.scale is not None) == (independent and spec.num_coefficients == 1)
    assert (layer.coefficients is not None) == (independent and spec.num_coefficients == 4)
    assert len(layer.ch_layers) == (len(SMALL["ch_units"]) if spec.uses_ch else 0)
    assert (layer.mix_kernel is not None) == spec.uses_mix
    assert (layer.head_kernel is not None) == (spec.input_dependent and not spec.uses_mix)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.num_coefficients = 2
