import hashlib
import json

import keras
import numpy as np
import pytest

from keras_memblocks.data import load_digits
from keras_memblocks.export import ExportError
from keras_memblocks.export import export_model
from keras_memblocks.models import cifar_resnet
from keras_memblocks.models import vgg_like
from tests import layer_battery

X = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")


@keras.saving.register_keras_serializable(package="keras_memblocks_tests")
class SingularValues(keras.layers.Layer):
    """Needs TF's Svd op, which TFLite has no builtin for."""

    def call(self, x):
        values = keras.ops.svd(keras.ops.reshape(x, (-1, x.shape[1], x.shape[2] * x.shape[3])),
                               compute_uv=False)
        return keras.ops.mean(values, axis=-1, keepdims=True)


def no_leftovers(path):
    return [p.name for p in path.parent.iterdir() if ".partial-" in p.name] == []


def cc_model():
    model = vgg_like("cifar10", 4, block="cc", variant="reduced")
    layer_battery.randomize_weights(model, scale=0.05)
    return model


def test_all_formats_with_parity_and_manifest(tmp_path):
    out = tmp_path / "export"
    manifest = export_model(cc_model(), out, parity_inputs=X)
    assert manifest["formats"] == ["saved_model", "tflite", "onnx"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    for name, entry in manifest["files"].items():
        assert (out / entry["path"]).exists()
        assert manifest["parity"][name]["max_abs_diff"] <= 1e-4
        assert manifest["parity"][name]["top1_agreement"] == 1.0
    digest = hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert manifest["files"]["onnx"]["sha256"] == digest
    assert manifest["input"]["shape"] == [None, 32, 32, 3]
    assert set(manifest["versions"]) >= {"keras", "tensorflow", "tf2onnx", "onnxruntime"}
    assert no_leftovers(out)


def test_sr_model_and_dynamic_batch(tmp_path):
    model = cifar_resnet(18, num_classes=10, width=4, sr=dict(module=3, num_memory_blocks=2))
    layer_battery.randomize_weights(model, scale=0.05)
    manifest = export_model(model, tmp_path / "sr", formats=("tflite", "onnx"), parity_inputs=X[:3])
    assert manifest["parity"]["tflite"]["max_abs_diff"] <= 1e-4  # batch 3, not the traced one


def test_int8_with_real_images_is_reported(tmp_path):
    (x_train, _), (x_test, _) = load_digits(32)
    manifest = export_model(cc_model(), tmp_path / "int8", formats=("tflite",), quantization="int8",
                            representative_data=x_train[:32], parity_inputs=x_test[:32])
    assert manifest["files"]["tflite"]["path"] == "model_int8.tflite"
    assert manifest["parity"]["tflite"]["checked"] == "reported"
    assert 0.0 <= manifest["parity"]["tflite"]["top1_agreement"] <= 1.0


def test_flex_ops_are_refused_and_nothing_is_left(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, SingularValues()(inputs))
    out = tmp_path / "flex"
    with pytest.raises(ExportError, match=r"builtin ops only failed.*Svd"):
        export_model(model, out, formats=("tflite",), parity_inputs=X[:2, :8, :8])
    assert not out.exists() and no_leftovers(out)


def test_failed_onnx_leaves_nothing(tmp_path):
    out = tmp_path / "bad_opset"
    # opset 1 converts, but onnxruntime refuses the file: caught by the parity run.
    with pytest.raises(ExportError, match="onnx"):
        export_model(cc_model(), out, formats=("saved_model", "onnx"), opset=1, parity_inputs=X[:2])
    assert not out.exists() and no_leftovers(out)


def test_bad_arguments(tmp_path):
    model = cc_model()
    with pytest.raises(ValueError, match="Unknown formats"):
        export_model(model, tmp_path / "a", formats=("coreml",))
    with pytest.raises(ValueError, match="Unknown quantization"):
        export_model(model, tmp_path / "a", quantization="int4")
    with pytest.raises(ValueError, match="needs representative_data"):
        export_model(model, tmp_path / "a", quantization="int8")
    (tmp_path / "exists").mkdir()
    with pytest.raises(ValueError, match="overwrite=True"):
        export_model(model, tmp_path / "exists")
    mixed = vgg_like("cifar10", 2)
    mixed_policy = keras.Model(mixed.input, keras.layers.Activation("linear", dtype="mixed_float16")(mixed.output))
    with pytest.raises(ValueError, match="float32 model"):
        export_model(mixed_policy, tmp_path / "b")
