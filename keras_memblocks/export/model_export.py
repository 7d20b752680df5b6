"""Export a Keras model to SavedModel, TFLite and ONNX, verified.

Built on `keras.Model.export` (SavedModel), TensorFlow's TFLite converter
and tf2onnx; each artifact is then run in its own runtime (TensorFlow,
`ai_edge_litert`, onnxruntime) against the Keras model before the export
counts as done.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import ai_edge_litert
import keras
import numpy as np
import onnxruntime
import tensorflow as tf
import tf2onnx
from ai_edge_litert.interpreter import Interpreter

from keras_memblocks.export.int8_ranges import widen_collapsed_ranges
from keras_memblocks.layers import ContextualConvBlock2D
from keras_memblocks.layers import cc_formulation
from keras_memblocks.layers.contextual_conv_block_2d import chosen_cc_formulation

FORMATS = ("saved_model", "tflite", "onnx")
QUANTIZATIONS = (None, "float16", "dynamic_range", "int8")
FLOAT_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export that did not convert, or whose numbers differ from Keras.

    Raised by `export_model`, which then leaves nothing behind.

    Example:

    >>> import pathlib, tempfile, keras
    >>> from keras_memblocks.export import ExportError, export_model
    >>> from keras_memblocks.models import vgg_like
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
    >>> try:  # opset 1 converts, but onnxruntime cannot run the file
    ...     export_model(vgg_like("mnist", width=1), out, formats=("onnx",), opset=1)
    ... except ExportError:
    ...     print("refused; left behind:", out.exists())
    refused; left behind: False
    """


def _float32_policies(config):
    """A model config with every layer's dtype policy set to float32."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and "config" in config:
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(item) for item in config]
    return config


def float32_clone(model):
    """The same model with float32 compute everywhere and the same weights.

    Mixed-precision models keep float32 variables, so the weights carry
    over unchanged; ONNX and float TFLite need float32 graphs.

    Example:

    >>> import keras
    >>> from keras_memblocks.export import float32_clone
    >>> from keras_memblocks.models import vgg_like
    >>> keras.mixed_precision.set_global_policy("mixed_float16")
    >>> mixed = vgg_like("mnist", width=2, blocks={"block": "cc", "after": "conv"})
    >>> keras.mixed_precision.set_global_policy("float32")
    >>> sorted({layer.dtype_policy.name for layer in float32_clone(mixed).layers})
    ['float32']
    """
    clone = model.__class__.from_config(_float32_policies(model.get_config()))
    clone.set_weights(model.get_weights())
    return clone


def deployed_model(model):
    """The network to deploy: `model` without its training-only heads.

    A model whose outputs are a dict with `"predictions"` (the
    segmentation models with `auxiliary_head=True`) is deployed as that
    output alone. Returns `(model, names of the dropped outputs)`.

    Example:

    >>> from keras_memblocks.export import deployed_model
    >>> from keras_memblocks.models import fcn
    >>> model, dropped = deployed_model(fcn(3, input_shape=(32, 32, 3), auxiliary_head=True))
    >>> model.output.shape, dropped
    ((None, 32, 32, 3), ['aux'])
    """
    outputs = model.outputs
    if len(outputs) == 1:
        return model, []
    named = model.output if isinstance(model.output, dict) else {}
    if "predictions" not in named:
        raise ValueError(
            f"Model {model.name!r} has {len(outputs)} outputs; export_model exports one. Export "
            "keras.Model(model.inputs, <the output to deploy>) instead."
        )
    dropped = sorted(set(named) - {"predictions"})
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, named["predictions"], name=model.name), dropped


def _is_float32(model):
    policies = {layer.dtype_policy.name for layer in model.layers}
    return policies == {"float32"} and all(w.dtype == "float32" for w in model.weights)


def _input_spec(model):
    shape = tuple(model.input.shape)
    return tf.TensorSpec((None, *shape[1:]), tf.float32, name="image")


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)


def _tflite_formulation(model):
    """The CC formulation a TFLite file of `model` is traced with.

    TFLite runs at batch 1, where LiteRT's XNNPACK runs the CC block's
    small batched matmuls slowly (float32) or not at all (int8), and a
    multiply-and-sum fast (`cc_formulation`; measured in
    benchmarks/export_latency.py). `None`: the SavedModel's graph serves
    (so does an enclosing `cc_formulation`, the caller's choice).
    """
    if chosen_cc_formulation() is not None:
        return None
    has_cc = any(
        isinstance(layer, ContextualConvBlock2D) and layer.input_dependent
        for layer in _all_layers(model)
    )
    return "multiply_sum" if has_cc else None


def _export_saved_model(model, path):
    model.export(
        str(path), format="tf_saved_model", verbose=False, input_signature=[_input_spec(model)]
    )


def _write_tflite(saved_model_dir, path, quantization, representative_data):
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
        converter.representative_dataset = lambda: ([sample[None]] for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
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
    path.write_bytes(model_bytes)
    return widened


def _write_onnx(model, path, opset):
    function = tf.function(lambda image: model(image, training=False))
    # tf2onnx deep-copies the whole graph, weights included, before each of
    # its optimizer passes so that a failing pass can be skipped; the copies
    # pile up (a DeepLabv3's export peaked at 13.4 GB, 8.9 GB without them).
    # Setting TF2ONNX_CATCH_ERRORS turns the copies off (tf2onnx 1.17 reads any
    # value as false); a failing pass then fails the export, which says so.
    try:
        with mock.patch.dict(os.environ, {"TF2ONNX_CATCH_ERRORS": "FALSE"}):
            tf2onnx.convert.from_function(
                function, input_signature=(_input_spec(model),), opset=opset, output_path=str(path)
            )
    except Exception as error:
        raise ExportError(f"ONNX conversion failed (opset={opset}): {error}") from error


def run_saved_model(path, inputs):
    """Runs an exported SavedModel's `serve` endpoint on `inputs` (TensorFlow).

    `run_tflite` (LiteRT interpreter) and `run_onnx` (onnxruntime CPU) do
    the same for the other formats; `export_model` uses all three for its
    parity check.

    Example:

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
    return np.asarray(loaded.serve(tf.constant(inputs)))


def tflite_interpreter(path, inputs, num_threads=None):
    """A LiteRT interpreter of a TFLite model with `inputs` set, ready to
    `invoke()`: resized to their batch size, quantised for an int8 model.

    What `run_tflite` runs, and what a latency measurement times.

    Example:

    >>> import pathlib, tempfile, numpy as np
    >>> from keras_memblocks.export import export_model, tflite_interpreter
    >>> from keras_memblocks.models import vgg_like
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
    >>> _ = export_model(vgg_like("mnist", width=1), out, formats=("tflite",))
    >>> interpreter = tflite_interpreter(out / "model.tflite", np.zeros((3, 28, 28, 1), "float32"))
    >>> interpreter.invoke()
    >>> interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).shape
    (3, 10)
    """
    interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
    source = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(source["index"], list(inputs.shape))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    data = inputs
    if source["dtype"] == np.int8:  # full-integer model: quantise the input
        scale, zero_point = source["quantization"]
        data = np.clip(np.round(inputs / scale + zero_point), -128, 127).astype(np.int8)
    interpreter.set_tensor(source["index"], data)
    return interpreter


def run_tflite(path, inputs):
    """Runs a TFLite model on `inputs` with LiteRT, any batch size; int8
    models get quantised inputs and dequantised outputs.

    Example:

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
    interpreter = tflite_interpreter(path, inputs)
    target = interpreter.get_output_details()[0]
    interpreter.invoke()
    output = interpreter.get_tensor(target["index"])
    if target["dtype"] == np.int8:
        scale, zero_point = target["quantization"]
        output = (output.astype("float32") - zero_point) * scale
    return output


def run_onnx(path, inputs):
    """Runs an ONNX model on `inputs` with onnxruntime's CPU provider.

    Example:

    >>> import pathlib, tempfile, numpy as np
    >>> from keras_memblocks.export import export_model, run_onnx
    >>> from keras_memblocks.models import vgg_like
    >>> scalar_cc = {"block": "cc", "after": "conv", "variant": "scalar"}
    >>> model = vgg_like("mnist", width=2, blocks=scalar_cc)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
    >>> _ = export_model(model, out, formats=("onnx",))
    >>> x = np.ones((2, 28, 28, 1), "float32")
    >>> bool(np.allclose(run_onnx(out / "model.onnx", x), model.predict(x, verbose=0), atol=1e-5))
    True
    """
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


_RUNNERS = {"saved_model": run_saved_model, "tflite": run_tflite, "onnx": run_onnx}


def _parity(expected, got):
    flat_expected = expected.reshape(len(expected), -1, expected.shape[-1])
    flat_got = got.reshape(len(got), -1, got.shape[-1])
    agreement = float(np.mean(flat_expected.argmax(-1) == flat_got.argmax(-1)))
    return {"max_abs_diff": float(np.abs(expected - got).max()), "top1_agreement": agreement}


def _sha256(path):
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _versions():
    return {
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
    }


def export_model(
    model,
    out_dir,
    formats=FORMATS,
    quantization=None,
    representative_data=None,
    opset=17,
    parity_inputs=None,
    overwrite=False,
    tolerance=FLOAT_TOLERANCE,
):
    """Exports `model` and verifies every artifact against it.

    Args:
        model: a `keras.Model` with one image input (a keras-hub task is
            exported without its preprocessor: the files take what
            `task.preprocessor` gives); a mixed-precision model
            is exported as its float32 clone (`float32_clone`), a model with
            an auxiliary training head as its `"predictions"` output alone
            (`deployed_model`).
        out_dir: the folder to create (or an empty one, such as
            `tempfile.mkdtemp()` gives); it is filled only once every
            artifact converted and passed parity (nothing half-written is
            left).
        formats: any of `"saved_model"`, `"tflite"`, `"onnx"`.
        quantization: TFLite quantization: `None` (float32), `"float16"`,
            `"dynamic_range"` or `"int8"` (full integer; needs
            `representative_data`, real images from the training data).
        representative_data: images (N, H, W, C) for int8 calibration.
        opset: ONNX opset.
        parity_inputs: held-out inputs for the parity check; default: the
            representative data, else 8 standard-normal images.
        overwrite: replace a non-empty `out_dir`.
        tolerance: the largest max abs diff a float artifact may show
            (default 1e-4). Deep nets can need more: a randomly initialised
            DeepLabv3 (ResNet50, no block) differs by 1.3e-4 between
            TensorFlow and onnxruntime in float32 alone.

    Returns:
        The manifest (also written to `out_dir/manifest.json`): formats,
        files with SHA-256, input/output specs, versions, and per artifact
        the max abs diff and top-1 agreement with Keras. Float artifacts must
        be within `tolerance` with 100 % top-1 agreement or `ExportError` is
        raised; quantized ones are reported.

    Example:

    >>> import pathlib, tempfile
    >>> from keras_memblocks.data import load_digits
    >>> from keras_memblocks.export import export_model
    >>> from keras_memblocks.models import vgg_like
    >>> (x_train, _), (x_test, _) = load_digits(28, channels=1)
    >>> model = vgg_like("mnist", width=2, blocks={"block": "cc", "after": "conv"})
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> manifest = export_model(model, out / "float", parity_inputs=x_test[:16])
    >>> manifest["formats"], manifest["parity"]["onnx"]["top1_agreement"]
    (['saved_model', 'tflite', 'onnx'], 1.0)
    >>> int8 = export_model(model, out / "int8", formats=("tflite",), quantization="int8",
    ...                     representative_data=x_train[:32], parity_inputs=x_test[:16])
    >>> int8["files"]["tflite"]["path"], int8["parity"]["tflite"]["checked"]
    ('model_int8.tflite', 'reported')
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(
            f"Unknown formats {unknown or formats}. Valid formats: {', '.join(FORMATS)}"
        )
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantization!r}. Valid: {QUANTIZATIONS}")
    if quantization == "int8" and representative_data is None:
        raise ValueError("quantization='int8' needs representative_data: real training images.")
    model, dropped_outputs = deployed_model(model)
    source_precision = "float32"
    if not _is_float32(model):
        source_precision = "mixed"
        model = float32_clone(model)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{str(out_dir)!r} is a file; give a directory to export into.")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(
            f"{str(out_dir)!r} exists and is not empty; pass overwrite=True "
            "(memblocks export --overwrite) to replace it."
        )
    if parity_inputs is None and representative_data is None and None in model.input.shape[1:]:
        raise ValueError(
            f"Model {model.name!r} takes inputs of unknown height or width "
            f"({tuple(model.input.shape)}): pass parity_inputs (images at a size it runs at) "
            "to check the exported files against."
        )
    if parity_inputs is None:
        parity_inputs = (
            representative_data
            if representative_data is not None
            else (np.random.default_rng(0).normal(size=(8, *model.input.shape[1:])))
        )
    parity_inputs = np.asarray(parity_inputs, dtype="float32")
    # Keras' own predict: a keras-hub task overrides it to run its
    # preprocessor first, which the exported graph does not hold.
    expected = np.asarray(keras.Model.predict(model, parity_inputs, verbose=0))
    # NaN compares false with everything: the parity checks below would pass.
    if not np.isfinite(expected).all():
        raise ExportError(
            "The model gives NaN or inf on the parity inputs, so no export of it can be "
            "checked; did its training diverge?"
        )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        artifacts, widened = {}, []
        saved_model_dir = staging / "saved_model"
        if "saved_model" in formats:
            _export_saved_model(model, saved_model_dir)
            artifacts["saved_model"] = saved_model_dir
        tflite_formulation = None
        if "tflite" in formats:
            suffix = "" if quantization is None else f"_{quantization}"
            artifacts["tflite"] = staging / f"model{suffix}.tflite"
            # The converter reads a SavedModel: the one above where its graph
            # serves, else one traced for TFLite alone.
            tflite_source = saved_model_dir
            tflite_formulation = _tflite_formulation(model)
            if tflite_formulation is not None or "saved_model" not in formats:
                tflite_source = staging / "tflite_source"
                traced_as = (
                    cc_formulation(tflite_formulation)
                    if tflite_formulation
                    else contextlib.nullcontext()
                )
                with traced_as:
                    _export_saved_model(model, tflite_source)
            widened = _write_tflite(
                tflite_source, artifacts["tflite"], quantization, representative_data
            )
            if tflite_source != saved_model_dir:
                shutil.rmtree(tflite_source)
        if "onnx" in formats:
            artifacts["onnx"] = staging / "model.onnx"
            _write_onnx(model, artifacts["onnx"], opset)

        parity = {}
        for name, path in artifacts.items():
            try:
                outputs = np.asarray(_RUNNERS[name](path, parity_inputs))
            except Exception as error:
                raise ExportError(
                    f"The {name} artifact does not run in its runtime: {error}"
                ) from error
            if not np.isfinite(outputs).all():
                raise ExportError(
                    f"The {name} artifact gives NaN or inf where the Keras model does not."
                )
            result = _parity(expected, outputs)
            quantized = name == "tflite" and quantization is not None
            result["checked"] = (
                "reported"
                if quantized
                else (f"max_abs_diff <= {tolerance} and top1_agreement == 1")
            )
            if not quantized and (
                result["max_abs_diff"] > tolerance or result["top1_agreement"] < 1.0
            ):
                raise ExportError(f"{name} artifact differs from the Keras model: {result}")
            parity[name] = result

        manifest = {
            "formats": list(artifacts),
            "quantization": quantization,
            # A mixed-precision model is exported (and checked) as its float32 clone.
            "source_precision": source_precision,
            # Training-only heads (the auxiliary segmentation head) are not deployed.
            "dropped_outputs": dropped_outputs,
            # int8: tensors the calibration saw constant at zero, given a usable
            # range (keras_memblocks.export.int8_ranges).
            "widened_ranges": widened,
            # How the TFLite graph's CC blocks contract, where that graph
            # differs from the SavedModel's (keras_memblocks.layers.cc_formulation).
            "tflite_cc_formulation": tflite_formulation,
            "files": {
                name: {"path": path.name, "sha256": _sha256(path)}
                for name, path in artifacts.items()
            },
            "input": {"name": "image", "shape": [None, *model.input.shape[1:]], "dtype": "float32"},
            "output": {"shape": [None, *model.output.shape[1:]], "dtype": "float32"},
            "versions": _versions(),
            "parity": parity,
            "parity_examples": int(len(parity_inputs)),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
        return manifest
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
