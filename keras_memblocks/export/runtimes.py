"""Running an exported file in its own runtime: TensorFlow, LiteRT, onnxruntime.

What `export_model` checks every artifact with, and what a deployment runs.
"""

import numpy as np
import onnxruntime
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keras_memblocks.edge import dequantize
from keras_memblocks.edge import fixed_batch
from keras_memblocks.edge import in_batches
from keras_memblocks.edge import quantize
from keras_memblocks.utils import compat


def run_saved_model(path, inputs):
    """Runs an exported SavedModel's `serve` endpoint on `inputs` (TensorFlow).

    `run_tflite` (LiteRT interpreter) and `run_onnx` (onnxruntime CPU) do
    the same for the other formats; `export_model` uses all three for its
    parity check.

    Examples:
        >>> import pathlib, tempfile, numpy as np
        >>> from keras_memblocks.export import export_model, run_onnx, run_saved_model, run_tflite
        >>> from keras_memblocks.models import vgg_like
        >>> model = vgg_like("mnist", width=2, blocks={"block": "cc", "after": "conv"})
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
        >>> _ = export_model(model, out)
        >>> x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
        >>> expected = model.predict(x, verbose=0)
        >>> [bool(np.allclose(run(path, x), expected, atol=1e-5)) for run, path in
        ...  [(run_saved_model, out / "saved_model"), (run_tflite, out / "model.tflite"),
        ...   (run_onnx, out / "model.onnx")]]
        [True, True, True]
    """
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    batch = fixed_batch(next(iter(signature.structured_input_signature[1].values())).shape[0])
    return in_batches(lambda x: loaded.serve(tf.constant(x)), inputs, batch)


def tflite_interpreter(path, inputs, num_threads=None):
    """A LiteRT interpreter of a TFLite model with `inputs` set, ready to
    `invoke()`: resized to their batch size (a file of fixed batch must get
    that many), quantised for a file with int8 or uint8 input.

    What `run_tflite` runs, and what a latency measurement times.

    Examples:
        >>> import pathlib, tempfile, numpy as np
        >>> from keras_memblocks.export import export_model, tflite_interpreter
        >>> from keras_memblocks.models import vgg_like
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
        >>> _ = export_model(vgg_like("mnist", width=1), out, formats=("tflite",))
        >>> images = np.zeros((3, 28, 28, 1), "float32")
        >>> interpreter = tflite_interpreter(out / "model.tflite", images)
        >>> interpreter.invoke()
        >>> interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).shape
        (3, 10)
    """
    interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
    source = interpreter.get_input_details()[0]
    if source["shape_signature"][0] == -1:
        interpreter.resize_tensor_input(source["index"], list(inputs.shape))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    interpreter.set_tensor(source["index"], quantize(inputs, source))
    return interpreter


def run_tflite(path, inputs):
    """Runs a TFLite model on `inputs` with LiteRT, any batch size; int8
    models get quantised inputs and dequantised outputs.

    Examples:
        >>> import pathlib, tempfile, numpy as np
        >>> from keras_memblocks.export import export_model, run_tflite
        >>> from keras_memblocks.models import vgg_like
        >>> sr = {"block": "sr", "after": "conv", "num_memory_blocks": 2}
        >>> model = vgg_like("mnist", width=2, blocks=sr)
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
        >>> _ = export_model(model, out, formats=("tflite",))
        >>> x = np.zeros((5, 28, 28, 1), "float32")  # any batch size
        >>> run_tflite(out / "model.tflite", x).shape
        (5, 10)
    """
    inputs = np.asarray(inputs)
    source = Interpreter(model_path=str(path)).get_input_details()[0]

    def run_batch(batch):
        interpreter = tflite_interpreter(path, batch)
        target = interpreter.get_output_details()[0]
        interpreter.invoke()
        return dequantize(interpreter.get_tensor(target["index"]), target)

    return in_batches(run_batch, inputs, fixed_batch(source["shape_signature"][0]))


def run_onnx(path, inputs):
    """Runs an ONNX model on `inputs` with onnxruntime's CPU provider.

    Examples:
        >>> import pathlib, tempfile, numpy as np
        >>> from keras_memblocks.export import export_model, run_onnx
        >>> from keras_memblocks.models import vgg_like
        >>> scalar_cc = {"block": "cc", "after": "conv", "variant": "scalar"}
        >>> model = vgg_like("mnist", width=2, blocks=scalar_cc)
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
        >>> _ = export_model(model, out, formats=("onnx",))
        >>> x = np.ones((2, 28, 28, 1), "float32")
        >>> expected = model.predict(x, verbose=0)
        >>> bool(np.allclose(run_onnx(out / "model.onnx", x), expected, atol=1e-5))
        True
    """
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0]
    return in_batches(
        lambda batch: session.run(None, {source.name: batch})[0],
        inputs,
        fixed_batch(source.shape[0]),
    )


def xnnpack_pieces(path):
    """How many pieces LiteRT's default XNNPACK delegate splits a TFLite file
    into (its DELEGATE nodes, at the file's batch or batch 1). One piece:
    every op delegated; each op it does not take between two pieces costs a
    hand-over."""
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in compat.litert_ops(interpreter))


RUNNERS = {"saved_model": run_saved_model, "tflite": run_tflite, "onnx": run_onnx}
