import keras
import numpy as np
import pytest

from keras_memblocks.layers import ContextualConvBlock2D
from keras_memblocks.layers import SqueezeAndRemember2D
from keras_memblocks.models import insert_blocks
from keras_memblocks.models import vgg_like
from tests import layer_battery
from tests import model_checks

pytestmark = pytest.mark.every_backend

X96 = np.random.default_rng(0).random((2, 96, 96, 3), dtype=np.float32)

EDGE_MODELS = {
    "MobileNetV2": (keras.applications.MobileNetV2, ["block_3_project_BN", "block_13_expand_relu"]),
    "EfficientNetB0": (
        keras.applications.EfficientNetB0,
        lambda layer: layer.name.endswith("_add"),
    ),
    "ResNet50": (keras.applications.ResNet50, ["conv3_block4_out", "conv4_block6_out"]),
}


# The rewriting is backend-independent and these nets are slow to run on JAX
# (~20-40 s a block): ResNet50 runs on every backend, the others on TensorFlow
# (test_backends.py fits MobileNetV2 with CC inserted on JAX and PyTorch).
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=() if name == "ResNet50" else pytest.mark.backends("tensorflow"))
        for name in EDGE_MODELS
    ],
)
@pytest.mark.parametrize(
    "block,kwargs", [("sr", dict(num_memory_blocks=2)), ("cc", {}), ("se", {})]
)
def test_keras_applications(name, block, kwargs):
    constructor, after = EDGE_MODELS[name]
    base = constructor(weights=None, input_shape=(96, 96, 3))
    model = insert_blocks(base, block, after, **kwargs)
    expected = [x.name for x in base.layers if after(x)] if callable(after) else after
    inserted = [x.name for x in model.layers if x.name.endswith(f"_{block}")]
    assert inserted == [f"{n}_{block}" for n in expected]
    names = model_checks.layer_names(model)
    for target in expected:  # each block right after its layer
        assert names[names.index(target) + 1] == f"{target}_{block}"
    # Original weights kept (compared layer by layer) ...
    for layer in base.layers:
        for a, b in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    out = model.predict(X96, verbose=0)
    if block in ("sr", "cc"):  # ... and identity-initialised blocks change nothing.
        np.testing.assert_allclose(out, base.predict(X96, verbose=0), rtol=1e-5, atol=1e-6)


def test_branches_and_skips_are_kept():
    inputs = keras.Input((16, 16, 3))
    stem = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    left = keras.layers.Conv2D(8, 3, padding="same", name="left")(stem)
    right = keras.layers.Conv2D(8, 1, name="right")(stem)
    merged = keras.layers.Add(name="merge")([left, right, stem])  # a skip from stem
    outputs = keras.layers.GlobalAveragePooling2D(name="gap")(merged)
    base = keras.Model(inputs, outputs)
    model = insert_blocks(base, ContextualConvBlock2D, ["stem"], variant="scalar")
    block = model.get_layer("stem_contextualconvblock2d")
    consumers = {n.operation.name for n in block._outbound_nodes}
    assert consumers == {"left", "right", "merge"}  # every use of stem now sees the block
    # Make the block non-trivial: outputs must now differ from the base model.
    block.set_weights([w + 0.5 for w in block.get_weights()])
    x = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    assert not np.allclose(model.predict(x, verbose=0), base.predict(x, verbose=0))


def test_our_builders_and_factories(tmp_path):
    base = vgg_like("cifar10", width=4)
    model = insert_blocks(
        base,
        lambda layer: SqueezeAndRemember2D(2, 4, name=f"{layer.name}_memory"),
        after=["stage2_conv1"],
    )
    assert model.get_layer("stage2_conv1_memory").output.shape == (None, 16, 16, 8)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    model_checks.check_save_load_round_trip(model, x, tmp_path)


def test_errors():
    base = vgg_like("cifar10", width=4)
    with pytest.raises(
        ValueError, match=r"no layer named 'stage2_conv'.*Did you mean.*stage2_conv1"
    ):
        insert_blocks(base, "sr", ["stage2_conv"])
    with pytest.raises(ValueError, match=r"'fc' outputs \(None, 128\), not a 4-D feature map"):
        insert_blocks(base, "cc", ["fc"])
    with pytest.raises(ValueError, match="selected no layer"):
        insert_blocks(base, "cc", lambda layer: False)
    with pytest.raises(ValueError, match="one layer instance"):
        insert_blocks(base, ContextualConvBlock2D(), ["stage1_conv1"])


def test_remove_blocks_gives_back_the_plain_network():
    from keras_memblocks.models import copy_weights_by_name
    from keras_memblocks.models import remove_blocks
    from tests import layer_battery

    with_blocks = vgg_like("cifar10", width=4, blocks={"block": "cc", "after": "conv"})
    blocks = [layer.name for layer in with_blocks.layers if layer.name.endswith("_cc")]
    for name in blocks:
        layer_battery.randomize_weights(with_blocks.get_layer(name), scale=0.3)
    removed = remove_blocks(with_blocks, blocks)
    plain = vgg_like("cifar10", width=4)
    copy_weights_by_name(with_blocks, plain)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(
        removed.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(with_blocks.predict(x, verbose=0), plain.predict(x, verbose=0))
    with pytest.raises(ValueError, match="no layer named 'stage1_conv1_c'.*stage1_conv1_cc"):
        remove_blocks(with_blocks, "stage1_conv1_c")
    with pytest.raises(
        ValueError, match="'stage1_pool' does not map one tensor to one of the same"
    ):
        remove_blocks(with_blocks, ["stage1_pool"])


def _classifier_around_a_backbone():
    """A task-like model: a functional backbone used as a layer, then a head."""
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    stage = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    backbone = keras.Model(inputs, keras.layers.Add(name="out")([x, stage]), name="backbone")
    image = keras.Input((16, 16, 3), name="image")
    features = backbone(image)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(image, keras.layers.Dense(3, name="logits")(pooled), name="classifier")


@pytest.mark.parametrize(
    "after", [["backbone/conv2"], lambda layer: layer.name == "conv2"], ids=["path", "predicate"]
)
def test_blocks_go_into_a_nested_backbone(after, tmp_path):
    from tests import layer_battery

    base = _classifier_around_a_backbone()
    layer_battery.randomize_weights(base, scale=0.3)
    model = insert_blocks(base, "cc", after)
    # The outer structure is kept: same name, inputs, outputs, and a
    # backbone of the same name that now holds the block after conv2.
    assert model.name == "classifier" and model.input.name == "image"
    assert [layer.name for layer in model.layers] == [layer.name for layer in base.layers]
    backbone = model.get_layer("backbone")
    names = model_checks.layer_names(backbone)
    assert names[names.index("conv2") + 1] == "conv2_cc"
    # Weights kept everywhere, and the identity-initialised block changes nothing.
    for a, b in zip(
        base.get_layer("logits").get_weights(), model.get_layer("logits").get_weights()
    ):
        np.testing.assert_array_equal(a, b)
    for layer in base.get_layer("backbone").layers:
        for a, b in zip(layer.get_weights(), backbone.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), base.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    layer_battery.randomize_weights(backbone.get_layer("conv2_cc"), scale=0.3, keep_initial=False)
    assert not np.allclose(model.predict(x, verbose=0), base.predict(x, verbose=0))
    model_checks.check_save_load_round_trip(model, x, tmp_path)
    # ... and it comes out again by path.
    from keras_memblocks.models import remove_blocks

    removed = remove_blocks(model, ["backbone/conv2_cc"])
    np.testing.assert_allclose(
        removed.predict(x, verbose=0), base.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_nested_errors():
    base = _classifier_around_a_backbone()
    with pytest.raises(ValueError, match=r"no layer named 'backbone/conv3'.*backbone/conv2"):
        insert_blocks(base, "cc", ["backbone/conv3"])
    with pytest.raises(ValueError, match=r"'pool' is a GlobalAveragePooling2D, not a functional"):
        insert_blocks(base, "cc", ["pool/inner"])

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    with pytest.raises(ValueError, match=r"not a functional graph.*backbone"):
        insert_blocks(Subclassed(), "cc", ["conv"])


@pytest.mark.large  # 30 s; inserting into keras.applications models is checked in make test
@pytest.mark.backends("tensorflow")
def test_pretrained_keras_applications_weights_from_a_local_file(tmp_path):
    """The pretrained path with `keras.applications`: weights loaded from a
    file -> blocks inserted -> outputs unchanged -> fine-tuned (ImageNet
    weights cannot be downloaded on the test machines; a saved file stands
    for them). Logits and a small step: a random ResNet50's softmax at 32x32
    can saturate to one-hot, which one step need not move, and SGD(0.01)
    drives its outputs to NaN, which "not allclose" would pass."""
    x = np.random.default_rng(1).random((4, 32, 32, 3), dtype=np.float32)
    head = dict(input_shape=(32, 32, 3), classes=4, classifier_activation=None)
    trained = keras.applications.ResNet50(weights=None, **head)
    layer_battery.randomize_weights(trained, scale=0.01)  # stands for trained weights
    trained.save_weights(tmp_path / "resnet50.weights.h5")
    base = keras.applications.ResNet50(weights=str(tmp_path / "resnet50.weights.h5"), **head)
    reference = base.predict(x, verbose=0)
    np.testing.assert_array_equal(reference, trained.predict(x, verbose=0))
    model = insert_blocks(base, "sr", ["conv3_block4_out", "conv4_block6_out"], num_memory_blocks=2)
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    blocks = [model.get_layer(f"{name}_sr") for name in ("conv3_block4_out", "conv4_block6_out")]
    initial = [block.get_weights() for block in blocks]
    model.fit(x, np.array([0, 1, 2, 3]), epochs=1, batch_size=4, verbose=0)
    tuned = model.predict(x, verbose=0)
    assert np.isfinite(tuned).all() and not np.allclose(tuned, reference)
    for block, before in zip(blocks, initial):  # the inserted blocks learned too
        assert any(not np.array_equal(a, b) for a, b in zip(block.get_weights(), before))
