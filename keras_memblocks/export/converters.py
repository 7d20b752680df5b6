"""The converters: Keras' SavedModel export, TensorFlow's TFLite converter, tf2onnx.

Each writes one artifact of a float32 Keras model into a folder;
`export_model` then runs it against Keras (`runtimes`) before it counts.
"""

import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf2onnx

from keras_memblocks.export.errors import ExportError
from keras_memblocks.export.int8_ranges import widen_collapsed_ranges
from keras_memblocks.export.metadata import finish_onnx
from keras_memblocks.export.metadata import with_io_type
from keras_memblocks.export.metadata import write_tflite_metadata
from keras_memblocks.utils import compat


def _input_spec(model, batch_size=None):
    # A fixed batch (`batch_size`) makes every shape in the graph static: no
    # SHAPE / STRIDED_SLICE / PACK before each RESHAPE, which XNNPACK does
    # not take, and shapes TFLite Micro (it never resizes) can run as stored.
    shape = tuple(model.input.shape)
    return tf.TensorSpec((batch_size, *shape[1:]), tf.float32, name="image")


def export_saved_model(model, path, batch_size=None):
    model.export(
        str(path),
        format="tf_saved_model",
        verbose=False,
        input_signature=[_input_spec(model, batch_size)],
    )


_IO_DTYPES = {"int8": tf.int8, "uint8": tf.uint8}


def write_tflite(
    saved_model_dir,
    path,
    quantization,
    representative_data,
    io_type="float32",
    metadata=None,
    batch_size=None,
):
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    # Builtin ops only: the pip LiteRT runtime cannot run Flex (SELECT_TF_OPS)
    # ops, so a model needing them must fail here, not on the device.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        samples = np.asarray(representative_data, dtype="float32")
        step = batch_size or 1  # the signature's batch; leftover images are not used
        converter.representative_dataset = lambda: (
            [samples[start : start + step]] for start in range(0, len(samples) - step + 1, step)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_type in _IO_DTYPES:  # quantized input and output tensors, for NPUs and MCUs
            converter.inference_input_type = _IO_DTYPES[io_type]
            converter.inference_output_type = _IO_DTYPES[io_type]
    try:
        model_bytes = converter.convert()
    except Exception as error:  # the converter raises ConverterError and others
        text = str(error)
        ops = sorted(
            {
                line.split("tf.")[1].split(" ")[0].rstrip(",:")
                for line in text.splitlines()
                if "tf." in line and "op" in line.lower()
            }
        )
        named = f" Ops the TFLite builtins lack: {', '.join(ops)}." if ops else ""
        raise ExportError(
            f"TFLite conversion with builtin ops only failed.{named} Such a model would need "
            "Flex (SELECT_TF_OPS), which the LiteRT pip runtime cannot run.\n" + text[-2000:]
        ) from error
    widened = []
    if quantization == "int8":  # dead units would keep XNNPACK from preparing it
        model_bytes, widened = widen_collapsed_ranges(model_bytes)
    if metadata is not None:
        file_io = io_type if quantization == "int8" else "float32"
        model_bytes = write_tflite_metadata(model_bytes, with_io_type(metadata, file_io))
    path.write_bytes(model_bytes)
    return widened


def write_onnx(model, path, opset, batch_size=None, metadata=None):
    function = tf.function(lambda image: model(image, training=False))
    # Without the optimizer's graph copies a failing pass fails the export,
    # which then says so; with them, large nets run out of memory.
    try:
        with compat.tf2onnx_without_graph_copies():
            tf2onnx.convert.from_function(
                function,
                input_signature=(_input_spec(model, batch_size),),
                opset=opset,
                output_path=str(path),
            )
    except Exception as error:
        raise ExportError(f"ONNX conversion failed (opset={opset}): {error}") from error
    if metadata is not None:
        finish_onnx(path, with_io_type(metadata, "float32"))


def convert(
    model,
    folder,
    formats,
    quantization,
    representative_data,
    opset,
    batch_size=None,
    io_type="float32",
    metadata=None,
):
    """Writes each of `formats` of the float32 `model` into `folder`.

    `batch_size` fixes the batch axis of every file (`None`: any batch);
    `io_type` is the input and output type of an int8 TFLite file;
    `metadata` (`keras_memblocks.export.metadata.describe`) goes into the
    TFLite and ONNX files.

    Returns:
        `(artifacts, notes)`: `{format: path}`, and what the manifest records
        of how they were made (`widened_ranges`).

    Raises:
        ExportError: a converter failed.
    """
    folder = Path(folder)
    artifacts, widened = {}, []
    saved_model_dir = folder / "saved_model"
    if "saved_model" in formats:
        export_saved_model(model, saved_model_dir, batch_size)
        artifacts["saved_model"] = saved_model_dir
    if "tflite" in formats:
        suffix = "" if quantization is None else f"_{quantization}"
        artifacts["tflite"] = folder / f"model{suffix}.tflite"
        # The converter reads a SavedModel: the one above, else one written for it.
        tflite_source = saved_model_dir
        if "saved_model" not in formats:
            tflite_source = folder / "tflite_source"
            export_saved_model(model, tflite_source, batch_size)
        widened = write_tflite(
            tflite_source,
            artifacts["tflite"],
            quantization,
            representative_data,
            io_type,
            metadata,
            batch_size,
        )
        if tflite_source != saved_model_dir:
            shutil.rmtree(tflite_source)
    if "onnx" in formats:
        artifacts["onnx"] = folder / "model.onnx"
        write_onnx(model, artifacts["onnx"], opset, batch_size, metadata)
    return artifacts, {"widened_ranges": widened}
