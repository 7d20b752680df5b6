"""The private APIs of keras_memblocks.utils.compat, each checked on the installed
versions: when Keras, LiteRT, tf2onnx or tensorflow-datasets changes one, the test
named for it fails here (make test: the newest TensorFlow of the range; make
test-compat: the oldest)."""

import inspect
import os

import keras
import numpy as np
import pytest

from keras_memblocks.utils import compat

pytestmark = pytest.mark.oldest_tensorflow


def _functional():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Dense(3, name="body")(inputs))
    return keras.Model(inputs, outputs, name="functional")


def test_functional_models_are_told_from_sequential_and_subclassed_ones():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert compat.is_functional(_functional())
    assert not compat.is_functional(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    assert not compat.is_functional(Subclassed())
    assert not compat.is_functional(keras.layers.Dense(2))


def test_a_functional_subclass_is_rebuilt_from_its_config():
    @keras.saving.register_keras_serializable(package="test_compat")
    class Tagged(compat.Functional):
        def __init__(self, *args, tag="", **kwargs):  # as keras-hub's backbones
            super().__init__(*args, **kwargs)
            self.tag = tag

        def get_config(self):
            return {**compat.Functional.get_config(self), "tag": self.tag}

        @classmethod
        def from_config(cls, config, custom_objects=None):
            return compat.functional_from_config(cls, config, custom_objects=custom_objects)

    source = _functional()
    model = Tagged(inputs=source.input, outputs=source.output, tag="kept", name="tagged")
    clone = Tagged.from_config(model.get_config())
    assert type(clone) is Tagged and clone.tag == "kept"
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    x = np.ones((1, 4), "float32")
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x), model(x))


def test_a_symbolic_tensor_names_the_layer_that_produced_it():
    model = _functional()
    assert compat.producing_layer_name(model.output) == "head"
    assert compat.producing_layer_name(model.get_layer("body").output) == "body"


def test_litert_lists_the_ops_of_a_converted_model():
    tf = pytest.importorskip("tensorflow")
    from ai_edge_litert.interpreter import Interpreter

    function = tf.function(lambda x: tf.nn.relu(tf.matmul(x, tf.ones((4, 2)))))
    concrete = function.get_concrete_function(tf.TensorSpec((1, 4), tf.float32))
    model = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function).convert()
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in compat.litert_ops(interpreter)]
    assert "FULLY_CONNECTED" in ops or "BATCH_MATMUL" in ops, ops


def test_tf2onnx_still_reads_its_catch_errors_variable_and_it_is_restored():
    convert = pytest.importorskip("tf2onnx.convert")
    from tf2onnx import constants

    assert constants.ENV_TF2ONNX_CATCH_ERRORS == "TF2ONNX_CATCH_ERRORS"
    assert "ENV_TF2ONNX_CATCH_ERRORS in os.environ" in inspect.getsource(convert)
    before = os.environ.get("TF2ONNX_CATCH_ERRORS")
    with compat.tf2onnx_without_graph_copies():
        assert os.environ["TF2ONNX_CATCH_ERRORS"] == "FALSE"
    assert os.environ.get("TF2ONNX_CATCH_ERRORS") == before


def test_generated_tfds_examples_count_as_prepared_only_inside():
    tfds = pytest.importorskip("tensorflow_datasets")

    builder = tfds.builder("mnist", data_dir=os.devnull + "_absent")
    assert not builder.is_prepared()
    with compat.tfds_generated_examples(num_examples=2):
        assert builder.is_prepared()
        examples = list(builder.as_dataset(split="train").take(2))
    assert len(examples) == 2 and tuple(examples[0]["image"].shape) == (28, 28, 1)
    assert not builder.is_prepared()


def test_no_private_api_or_test_machinery_outside_the_compatibility_module():
    from pathlib import Path

    package = Path(compat.__file__).resolve().parents[1]
    found = [
        f"{path.relative_to(package.parent)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "compat.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(mark in line for mark in ("keras.src", "unittest", "_get_ops_details"))
    ]
    assert not found, f"private API or test machinery outside utils/compat.py: {found}"
