"""Verified export to SavedModel, TFLite and ONNX."""

from keras_memblocks.utils import extras

# Built on TensorFlow's converters and the runtimes: without them, say what to install.
extras.require("export", "keras_memblocks.export")

from keras_memblocks.edge import read_metadata
from keras_memblocks.export.errors import ExportError
from keras_memblocks.export.model_export import deployed_model
from keras_memblocks.export.model_export import export_model
from keras_memblocks.export.model_export import float32_clone
from keras_memblocks.export.runtimes import run_onnx
from keras_memblocks.export.runtimes import run_saved_model
from keras_memblocks.export.runtimes import run_tflite
from keras_memblocks.export.runtimes import tflite_interpreter

__all__ = [
    "ExportError",
    "deployed_model",
    "export_model",
    "float32_clone",
    "read_metadata",
    "run_onnx",
    "run_saved_model",
    "run_tflite",
    "tflite_interpreter",
]
