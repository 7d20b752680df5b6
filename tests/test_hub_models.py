"""Blocks in keras-hub backbones and tasks (the `[hub]` extra).

What comes back keeps working as what it was: a keras-hub backbone that a
task accepts, a task of the same class with its preprocessor and head; both
fit, save, and load in a new process with `safe_mode=True`.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import keras_hub
import numpy as np
import pytest

from keras_memblocks.models import insert_blocks
from keras_memblocks.models import remove_blocks
from keras_memblocks.models.hub_models import BackboneWithBlocks
from tests import layer_battery

pytestmark = pytest.mark.backends("tensorflow")

SIZE = 32
RNG = np.random.default_rng(0)
IMAGES = RNG.random((4, SIZE, SIZE, 3), dtype=np.float32)
LABELS = np.array([0, 1, 2, 0])
MEMBLOCKS = str(Path(sys.executable).with_name("memblocks"))  # the installed command


def resnet(block_type, use_pre_activation, image_shape=(None, None, 3)):
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type=block_type,
        use_pre_activation=use_pre_activation,
        image_shape=image_shape,
    )


def mobilenet_v3():
    return keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[16], [32, 32]],
        stackwise_num_blocks=[1, 2],
        stackwise_num_filters=[[8], [16, 16]],
        stackwise_kernel_size=[[3], [5, 5]],
        stackwise_num_strides=[[2], [2, 1]],
        stackwise_se_ratio=[[None], [0.25, 0.25]],
        stackwise_activation=[["relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1], [2, 2]],
        output_num_filters=32,
        input_activation="hard_swish",
        output_activation="hard_swish",
        input_num_filters=8,
        depthwise_filters=8,
        depthwise_stride=2,
        depthwise_residual=False,
        squeeze_and_excite=0.5,
        last_layer_filter=32,
        image_shape=(SIZE, SIZE, 3),
    )


def efficientnet():
    return keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[0.25] * 2,
        stackwise_depth_coefficients=[0.5] * 2,
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 2],
        stackwise_input_filters=[32, 16],
        stackwise_output_filters=[16, 24],
        stackwise_expansion_ratios=[1, 6],
        stackwise_squeeze_and_excite_ratios=[0.25, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["v1", "v1"],
        stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False],
        input_shape=(SIZE, SIZE, 3),
        num_features=64,
    )


def densenet():
    return keras_hub.models.DenseNetBackbone(
        stackwise_num_repeats=[1, 2], growth_rate=8, image_shape=(SIZE, SIZE, 3)
    )


# family: (backbone, block, where). CC goes into any-size backbones; SR
# (memories of a fixed H x W) into fixed-size ones.
FAMILIES = {
    "resnet_v1": (
        lambda: resnet("basic_block", False),
        "cc",
        lambda layer: layer.name.endswith("_out"),
    ),
    "resnet_v2": (
        lambda: resnet("bottleneck_block", True),
        "cc",
        lambda layer: layer.name.endswith("_out"),  # the residual Add
    ),
    "mobilenet_v3": (mobilenet_v3, "cc", lambda layer: layer.name.startswith("block_2_")),
    "efficientnet": (efficientnet, "sr", lambda layer: layer.name.endswith("_project_bn")),
    "densenet": (densenet, "sr", lambda layer: layer.name.endswith("_concat")),
}

LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    import keras_memblocks  # all it takes

    x = np.load(sys.argv[2])
    report = {}
    for name, path in json.loads(sys.argv[1]).items():
        if not path.endswith(".keras"):  # a keras-hub preset directory
            import keras_hub

            backbone = keras_hub.models.Backbone.from_preset(path)
            report[name] = {"class": type(backbone).__name__,
                            "output": keras.ops.convert_to_numpy(backbone(x)).tolist()}
            continue
        model = keras.saving.load_model(path)  # safe_mode=True
        report[name] = {
            "class": type(model).__name__,
            "backbone": type(model.backbone).__name__,
            "source_class": model.backbone.source_class,
            "pyramid": sorted(model.backbone.pyramid_outputs),
            "preprocessor": type(model.preprocessor).__name__,
            "output": model.predict(x, verbose=0).tolist(),
        }
    print(json.dumps(report))
""")


def load_in_a_new_process(paths, inputs, tmp_path):
    np.save(tmp_path / "inputs.npy", inputs)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, json.dumps(paths), str(tmp_path / "inputs.npy")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.large  # 53 s; the other keras-hub tests here stay in make test
def test_blocks_go_into_keras_hub_backbones_which_stay_backbones(tmp_path):
    paths, expected = {}, {}
    for family, (build, block, after) in FAMILIES.items():
        keras.utils.set_random_seed(0)
        original = build()
        backbone = insert_blocks(original, block, after=after)
        inserted = [layer for layer in backbone.layers if layer.name.endswith(f"_{block}")]
        assert inserted, family
        assert isinstance(backbone, BackboneWithBlocks)
        assert isinstance(backbone, keras_hub.models.Backbone)
        assert backbone.name == original.name
        assert backbone.source_class == keras.saving.get_registered_name(type(original))
        # The pyramid keeps its levels and shapes; the blocks start as the identity.
        original_pyramid = getattr(original, "pyramid_outputs", {})
        assert sorted(backbone.pyramid_outputs) == sorted(original_pyramid), family
        for level, tensor in original_pyramid.items():
            assert backbone.pyramid_outputs[level].shape == tensor.shape
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(backbone(IMAGES)),
            keras.ops.convert_to_numpy(original(IMAGES)),
            err_msg=family,
        )
        # A task accepts it, fits it, and saves it.
        classifier = keras_hub.models.ImageClassifier(backbone=backbone, num_classes=3)
        classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        before = [keras.ops.convert_to_numpy(w) for w in inserted[0].trainable_weights]
        history = classifier.fit(IMAGES, LABELS, epochs=1, batch_size=4, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        after_fit = [keras.ops.convert_to_numpy(w) for w in inserted[0].trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after_fit)), family
        paths[family] = str(tmp_path / f"{family}.keras")
        classifier.save(paths[family])
        expected[family] = (classifier.predict(IMAGES, verbose=0), sorted(original_pyramid))
    # A backbone with blocks is a keras-hub preset too (a task is not: see the README).
    backbone.save_to_preset(tmp_path / "preset")
    paths["preset"] = str(tmp_path / "preset")
    loaded = load_in_a_new_process(paths, IMAGES, tmp_path)
    assert loaded["preset"]["class"] == "BackboneWithBlocks"
    np.testing.assert_allclose(
        loaded["preset"]["output"], keras.ops.convert_to_numpy(backbone(IMAGES)), atol=1e-6
    )
    for family, (output, pyramid) in expected.items():
        report = loaded[family]
        assert (report["class"], report["backbone"]) == ("ImageClassifier", "BackboneWithBlocks")
        assert report["pyramid"] == pyramid
        np.testing.assert_allclose(report["output"], output, atol=1e-6, err_msg=family)


def resnet_classifier(image_shape=(SIZE, SIZE, 3)):
    keras.utils.set_random_seed(0)
    converter = keras_hub.layers.ResNetImageConverter(image_size=(SIZE, SIZE), scale=1 / 255.0)
    return keras_hub.models.ResNetImageClassifier(
        backbone=resnet("basic_block", False, image_shape),
        num_classes=3,
        preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(converter),
    )


def test_an_image_classifier_keeps_its_class_preprocessor_and_head(tmp_path):
    classifier = resnet_classifier()
    layer_battery.randomize_weights(classifier, scale=0.05)
    raw = RNG.integers(0, 256, (4, SIZE, SIZE, 3)).astype("uint8")  # the preprocessor scales
    with_cc = insert_blocks(classifier, "cc", after=lambda layer: layer.name.endswith("_out"))
    assert type(with_cc) is keras_hub.models.ResNetImageClassifier
    assert with_cc.preprocessor is classifier.preprocessor
    assert isinstance(with_cc.backbone, BackboneWithBlocks)
    np.testing.assert_array_equal(
        with_cc.get_layer("predictions").get_weights()[0],
        classifier.get_layer("predictions").get_weights()[0],
    )
    np.testing.assert_array_equal(
        with_cc.predict(raw, verbose=0), classifier.predict(raw, verbose=0)
    )
    # Taking the blocks out gives the classifier back.
    names = [f"{with_cc.backbone.name}/{layer.name}" for layer in with_cc.backbone.layers]
    plain = remove_blocks(with_cc, [name for name in names if name.endswith("_cc")])
    assert type(plain) is keras_hub.models.ResNetImageClassifier
    assert not [layer for layer in plain.backbone.layers if layer.name.endswith("_cc")]
    np.testing.assert_array_equal(plain.predict(raw, verbose=0), classifier.predict(raw, verbose=0))
    # It fits on raw images (through its preprocessor), saves and loads.
    with_cc.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with_cc.fit(raw, LABELS, epochs=1, batch_size=4, verbose=0)
    path = str(tmp_path / "classifier.keras")
    with_cc.save(path)
    report = load_in_a_new_process({"classifier": path}, raw, tmp_path)["classifier"]
    assert report["class"] == "ResNetImageClassifier"
    assert report["preprocessor"] == "ResNetImageClassifierPreprocessor"
    assert report["source_class"] == "keras_hub>ResNetBackbone"
    np.testing.assert_allclose(
        report["output"], with_cc.predict(raw, verbose=0), atol=1e-6, equal_nan=False
    )


def test_a_task_with_blocks_exports_with_parity(tmp_path):
    classifier = insert_blocks(
        resnet_classifier(), "cc", after=lambda layer: layer.name.endswith("_out")
    )
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    result = subprocess.run(
        [MEMBLOCKS, "export", str(path), "--formats", "tflite", "onnx",
         "--output-dir", str(tmp_path / "export")],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert sorted(manifest["parity"]) == ["onnx", "tflite"]
    for parity in manifest["parity"].values():
        assert parity["top1_agreement"] == 1.0
        assert parity["max_abs_diff"] <= 1e-4


def test_blocks_go_into_the_backbone_not_the_task_head():
    classifier = resnet_classifier()
    with pytest.raises(ValueError, match="head of the ResNetImageClassifier.*insert blocks into"):
        insert_blocks(classifier, "cc", after=[classifier.backbone.name])


# The `resnet_18_imagenet` preset's architecture (keras-hub 0.32).
RESNET_18 = dict(
    input_conv_filters=[64],
    input_conv_kernel_sizes=[7],
    stackwise_num_filters=[64, 128, 256, 512],
    stackwise_num_blocks=[2, 2, 2, 2],
    stackwise_num_strides=[1, 2, 2, 2],
    block_type="basic_block",
    use_pre_activation=False,
)


def test_the_pretrained_path_from_a_local_preset(tmp_path):
    """Weights loaded -> blocks inserted -> outputs unchanged -> fine-tuned:
    the README's preset workflow, with a preset saved here (presets cannot
    be downloaded on the test machines)."""
    keras.utils.set_random_seed(0)
    converter = keras_hub.layers.ResNetImageConverter(image_size=(64, 64), scale=1 / 255.0)
    trained = keras_hub.models.ResNetImageClassifier(
        backbone=keras_hub.models.ResNetBackbone(**RESNET_18),
        num_classes=4,
        preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(converter),
    )
    layer_battery.randomize_weights(trained, scale=0.05)  # stands for trained weights
    trained.save_to_preset(tmp_path / "preset")

    classifier = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "preset"))
    raw = RNG.integers(0, 256, (4, 64, 64, 3)).astype("uint8")
    reference = classifier.predict(raw, verbose=0)
    np.testing.assert_array_equal(reference, trained.predict(raw, verbose=0))
    stage_ends = [f"{classifier.backbone.name}/stack{i}_block1_out" for i in range(4)]
    with_cc = insert_blocks(classifier, "cc", after=stage_ends)
    np.testing.assert_array_equal(with_cc.predict(raw, verbose=0), reference)
    with_cc.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    history = with_cc.fit(raw, LABELS, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    tuned = with_cc.predict(raw, verbose=0)
    assert np.isfinite(tuned).all() and not np.allclose(tuned, reference)
