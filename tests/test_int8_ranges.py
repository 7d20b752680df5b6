"""Int8 models with a dead unit run under XNNPACK after their collapsed
ranges are widened, computing what LiteRT's reference kernels compute on
the model as converted."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType

from keras_memblocks.export import export_model
from keras_memblocks.export.int8_ranges import widen_collapsed_ranges

pytestmark = pytest.mark.backends("tensorflow")

X = np.random.default_rng(0).random((32, 4, 4, 8), dtype=np.float32)


def gated(dead):
    """An SE-like gate whose one hidden unit is dead (ReLU of a large
    negative bias) or alive."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 8))
    h = keras.layers.GlobalAveragePooling2D()(inputs)
    bias = keras.initializers.Constant(-100.0 if dead else 1.0)
    h = keras.layers.Dense(1, activation="relu", bias_initializer=bias)(h)
    h = keras.layers.Dense(8, activation="sigmoid", bias_initializer="random_normal")(h)
    outputs = keras.layers.Multiply()([inputs, keras.layers.Reshape((1, 1, 8))(h)])
    return keras.Model(inputs, outputs)


def int8_bytes(model, tmp_path):
    model.export(str(tmp_path / "saved_model"), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved_model"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in X)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # int8 in and out, so that the output's quantization step is known
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def run(model_bytes, x, delegates=True):
    resolver = (
        OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter = Interpreter(model_content=model_bytes, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()  # XNNPACK prepares here
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero_point = source["quantization"]
    outputs = []
    for sample in x:
        q = np.clip(np.round(sample / scale + zero_point), -128, 127).astype(np.int8)
        interpreter.set_tensor(source["index"], q[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0])
    out_scale, out_zero = target["quantization"]
    return (np.asarray(outputs, dtype=np.float32) - out_zero) * out_scale, out_scale


def test_a_dead_unit_no_longer_keeps_xnnpack_from_preparing(tmp_path):
    converted = int8_bytes(gated(dead=True), tmp_path)
    # The finding this module exists for (LiteRT 2.x): XNNPACK refuses the model as converted.
    with pytest.raises(RuntimeError, match="XNNPACK"):
        run(converted, X[:1])
    reference, step = run(converted, X, delegates=False)  # LiteRT's reference kernels
    widened, names = widen_collapsed_ranges(converted)
    assert len(names) == 1
    outputs, widened_step = run(widened, X)  # with XNNPACK
    assert widened_step == step
    np.testing.assert_allclose(outputs, reference, atol=1.01 * step)
    expected = keras.ops.convert_to_numpy(gated(dead=True)(X))
    np.testing.assert_allclose(outputs, expected, atol=2.01 * step)


def test_a_model_without_dead_units_is_left_as_converted(tmp_path):
    converted = int8_bytes(gated(dead=False), tmp_path)
    assert widen_collapsed_ranges(converted) == (converted, [])


def test_export_model_names_the_widened_tensors(tmp_path):
    manifest = export_model(
        gated(dead=True),
        tmp_path / "export",
        formats=("tflite",),
        quantization="int8",
        representative_data=X,
    )
    assert len(manifest["widened_ranges"]) == 1
    saved = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert saved["widened_ranges"] == manifest["widened_ranges"]
