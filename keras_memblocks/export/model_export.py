"""Export a Keras model to SavedModel, TFLite and ONNX, verified.

Built on `keras.Model.export` (SavedModel), TensorFlow's TFLite converter
and tf2onnx; each artifact is then run in its own runtime (TensorFlow,
`ai_edge_litert`, onnxruntime) against the Keras model before the export
counts as done. `export_model` is its steps in order: check the inputs,
convert (`converters`), run and compare (`check_parity`, with `runtimes`),
write the manifest (`build_manifest`), all inside a staging folder that
becomes the output only at the end (`staging`).
"""

import hashlib
import json
from pathlib import Path

import ai_edge_litert
import keras
import numpy as np
import onnxruntime
import tensorflow as tf
import tf2onnx

from keras_memblocks import registry
from keras_memblocks.export import staging
from keras_memblocks.export.converters import convert
from keras_memblocks.export.errors import ExportError
from keras_memblocks.export.metadata import IO_TYPES
from keras_memblocks.export.metadata import describe
from keras_memblocks.export.runtimes import RUNNERS
from keras_memblocks.export.runtimes import xnnpack_pieces
from keras_memblocks.layers.contextual_conv_block_2d import cc_blocks
from keras_memblocks.utils import argument_checks
from keras_memblocks.utils.files import is_marked
from keras_memblocks.utils.files import protected_reason
from keras_memblocks.utils.files import sha256
from keras_memblocks.utils.files import write_marker

FORMATS = tuple(registry.EXPORT_FORMATS)
QUANTIZATIONS = (None, "float16", "dynamic_range", "int8")
FLOAT_TOLERANCE = 1e-4


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

    Examples:
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

    Examples:
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


def check_finite_images(images, name):
    """`images` as float32, or a `ValueError` naming the first image with NaN or inf.

    NaN in calibration data aborts LiteRT's calibration (the whole process,
    with no message), and NaN in parity inputs would be blamed on the file.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.export.model_export import check_finite_images
        >>> images = np.zeros((4, 8, 8, 1), "float32")
        >>> images[2, 3, 3, 0] = np.nan
        >>> try:
        ...     check_finite_images(images, "calibration.npy")
        ... except ValueError as error:
        ...     print(str(error).split(";")[0])
        calibration.npy has NaN or inf in 1 of its 4 images, the first at index 2
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(f"{name} must be a batch of images. Received shape {images.shape}.")
    bad = ~np.isfinite(images.reshape(len(images), -1)).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{name} has NaN or inf in {int(bad.sum())} of its {len(images)} images, the first "
            f"at index {int(np.argmax(bad))}; remove or repair them."
        )
    return images


def _parity(expected, got):
    flat_expected = expected.reshape(len(expected), -1, expected.shape[-1])
    flat_got = got.reshape(len(got), -1, got.shape[-1])
    agreement = float(np.mean(flat_expected.argmax(-1) == flat_got.argmax(-1)))
    return {"max_abs_diff": float(np.abs(expected - got).max()), "top1_agreement": agreement}


def _digest(path):
    """`(sha256, what it covers)` of an artifact. A file: its bytes. A
    SavedModel: its `variables/` files, names and bytes, which are the same
    for the same weights; its `saved_model.pb` and `fingerprint.pb` name the
    traced functions by a counter that runs on across exports in one
    process, so two exports of one model differ there."""
    path = Path(path)
    if not path.is_dir():
        return sha256(path), "the file"
    digest = hashlib.sha256()
    for file in sorted(p for p in (path / "variables").rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(sha256(file).encode())
    return digest.hexdigest(), "variables/ (names and bytes)"


def _versions():
    return {
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
    }


def check_parity(artifacts, expected, parity_inputs, quantization, tolerance):
    """Runs every artifact on `parity_inputs` and compares it with `expected`.

    Returns:
        `{format: {"max_abs_diff", "top1_agreement", "checked"}}`.

    Raises:
        ExportError: an artifact does not run, gives NaN or inf, or (float
            formats) differs by more than `tolerance` or in any top-1 class.
    """
    parity = {}
    for name, path in artifacts.items():
        try:
            outputs = np.asarray(RUNNERS[name](path, parity_inputs))
        except Exception as error:
            raise ExportError(
                f"The {name} artifact does not run in its runtime: {error}"
            ) from error
        if not np.isfinite(outputs).all():  # the inputs and Keras' outputs were checked finite
            raise ExportError(
                f"The {name} artifact gives NaN or inf where the Keras model does not."
            )
        result = _parity(expected, outputs)
        quantized = name == "tflite" and quantization is not None
        result["checked"] = (
            "reported" if quantized else f"max_abs_diff <= {tolerance} and top1_agreement == 1"
        )
        if not quantized and (result["max_abs_diff"] > tolerance or result["top1_agreement"] < 1.0):
            raise ExportError(f"{name} artifact differs from the Keras model: {result}")
        parity[name] = result
    return parity


def _tflite_io(path):
    """The TFLite file's input and output tensors: dtype, and scale and zero
    point where quantized (what a device app quantizes with)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))

    def entry(details):
        scale, zero_point = details["quantization"]
        quantized = np.dtype(details["dtype"]).kind != "f"
        return {
            "dtype": np.dtype(details["dtype"]).name,
            "scale": float(scale) if quantized else None,
            "zero_point": int(zero_point) if quantized else None,
        }

    return {
        "input": entry(interpreter.get_input_details()[0]),
        "output": entry(interpreter.get_output_details()[0]),
    }


def build_manifest(model, artifacts, notes, parity, quantization, provenance, num_examples):
    """The manifest of a passed export (`manifest.json`), as `export_model` returns it."""
    metadata = notes["metadata"]
    tflite = artifacts.get("tflite")
    return {
        "formats": list(artifacts),
        "quantization": quantization,
        # A mixed-precision model is exported (and checked) as its float32 clone.
        "source_precision": provenance["source_precision"],
        # Training-only heads (the auxiliary segmentation head) are not deployed.
        "dropped_outputs": provenance["dropped_outputs"],
        # int8: tensors the calibration saw constant at zero, given a usable
        # range (keras_memblocks.export.int8_ranges).
        "widened_ranges": notes["widened_ranges"],
        # The `formulation` of the model's CC blocks ("auto": every file has
        # the inference form, a multiply and a sum; keras_memblocks.layers.CC_FORMULATIONS).
        "cc_formulations": sorted({block.formulation for block in cc_blocks(model)}),
        "files": {
            name: {
                "path": path.name,
                "sha256": digest,
                "sha256_of": covers,
                # What the file holds: quantization applies to the TFLite file alone.
                "precision": (quantization or "float32") if name == "tflite" else "float32",
            }
            for name, path in artifacts.items()
            for digest, covers in [_digest(path)]
        },
        "input": {
            "name": "image",
            "shape": metadata["input"]["shape"],
            "dtype": "float32",
            "value_range": metadata["input"]["value_range"],
        },
        "output": {
            "name": metadata["output"]["name"],
            "shape": metadata["output"]["shape"],
            "dtype": "float32",
        },
        "labels": metadata["output"]["labels"],
        # What the files themselves carry (keras_memblocks.export.read_metadata).
        "metadata": metadata,
        # The TFLite file's own tensors (int8 / uint8 with --io-type), and how
        # many pieces LiteRT's XNNPACK delegate splits it into (1: all of it).
        "tflite_io": _tflite_io(tflite) if tflite else None,
        "xnnpack_pieces": xnnpack_pieces(tflite) if tflite else None,
        "versions": _versions(),
        "parity": parity,
        "parity_examples": int(num_examples),
    }


def _check_options(formats, quantization, representative_data, batch_size, io_type):
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(
            f"Unknown formats {unknown or formats}. Valid formats: {', '.join(FORMATS)}"
        )
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantization!r}. Valid: {QUANTIZATIONS}")
    if quantization is not None and "tflite" not in formats:
        raise ValueError(
            f"quantization={quantization!r} (--quantize) applies to the TFLite file only, and "
            f"formats={list(formats)} has none; add 'tflite' to the formats."
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError("quantization='int8' needs representative_data: real training images.")
    if batch_size is not None:
        argument_checks.check_positive_int("batch_size", batch_size)
    if io_type not in IO_TYPES:
        raise ValueError(f"Unknown io_type {io_type!r} (--io-type). Valid: {', '.join(IO_TYPES)}")
    if io_type != "float32" and quantization != "int8":
        raise ValueError(
            f"io_type={io_type!r} (--io-type) gives an int8 TFLite file integer input and "
            f"output; it needs quantization='int8' (--quantize int8), not {quantization!r}."
        )


EXPORT_MARKER = "export"  # `.memblocks-export`, in every folder export_model publishes


def _is_earlier_export(out_dir):
    """Whether `out_dir` is a folder `export_model` published: it carries the marker,
    or (an export of a version before the marker) holds a manifest and only the
    files that manifest lists."""
    if is_marked(out_dir, EXPORT_MARKER):
        return True
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text()[:1_000_000])
        listed = {entry["path"] for entry in manifest["files"].values()} | {"manifest.json"}
        return {"formats", "parity"} <= set(manifest) and {
            p.name for p in out_dir.iterdir()
        } <= listed
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def check_out_dir(out_dir, overwrite, holds=()):
    """Refuses, before any work, an output folder an export must not fill or replace.

    Never the root, the home or the current directory or one of its ancestors,
    nor a folder holding any of `holds` (the model being exported); a
    non-empty folder only with `overwrite`, and only if it is an earlier export.
    """
    out_dir = Path(out_dir)
    reason = protected_reason(out_dir, holds)
    if reason is not None:
        raise ValueError(
            f"Cannot export into {str(out_dir)!r}: {reason}, and an export replaces its "
            "output folder. Give a new folder (--output-dir exports/model)."
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{str(out_dir)!r} is a file; give a directory to export into.")
    if out_dir.is_symlink():
        raise ValueError(f"{str(out_dir)!r} is a link; give the folder itself or a new one.")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not _is_earlier_export(out_dir):
            raise ValueError(
                f"{str(out_dir)!r} is not empty and is not an earlier export (it has no "
                ".memblocks-export marker), so it is never replaced; give a new or empty folder."
            )
        if not overwrite:
            raise ValueError(
                f"{str(out_dir)!r} holds an earlier export; pass overwrite=True "
                "(memblocks export --overwrite) to replace it."
            )
    return out_dir


def _model_to_export(model):
    """`(float32 model without training heads, provenance for the manifest)`."""
    model, dropped_outputs = deployed_model(model)
    source_precision = "float32"
    if not _is_float32(model):
        source_precision = "mixed"
        model = float32_clone(model)
    return model, {"source_precision": source_precision, "dropped_outputs": dropped_outputs}


def _parity_inputs(model, parity_inputs, representative_data):
    if parity_inputs is not None:
        return check_finite_images(parity_inputs, "parity_inputs")
    if representative_data is not None:
        return representative_data
    if None in model.input.shape[1:]:
        raise ValueError(
            f"Model {model.name!r} takes inputs of unknown height or width "
            f"({tuple(model.input.shape)}): pass parity_inputs (images at a size it runs at) "
            "to check the exported files against."
        )
    return np.random.default_rng(0).normal(size=(8, *model.input.shape[1:])).astype("float32")


def _keras_outputs(model, inputs):
    # Keras' own predict: a keras-hub task overrides it to run its
    # preprocessor first, which the exported graph does not hold.
    expected = np.asarray(keras.Model.predict(model, inputs, verbose=0))
    # NaN compares false with everything: the parity checks would pass.
    if not np.isfinite(expected).all():
        raise ExportError(
            "The model gives NaN or inf on the parity inputs, so no export of it can be "
            "checked; did its training diverge?"
        )
    return expected


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
    batch_size=None,
    io_type="float32",
    labels=None,
    input_range=(0.0, 1.0),
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
        batch_size: a fixed batch for every file (1 for a device: every
            shape static, no dynamic-shape ops, what TFLite Micro needs);
            `None` (default): any batch.
        io_type: the input and output tensors of an int8 TFLite file:
            `"float32"` (default; the file quantizes inside), `"int8"` or
            `"uint8"` (their scale and zero point are in the manifest's
            `tflite_io` and the file).
        labels: the class names, one per output, in class-index order;
            written into the files' metadata (`read_metadata`).
        input_range: the pixel values the model was trained on (this
            package's data pipelines give [0, 1]); written into the metadata.

    Returns:
        The manifest (also written to `out_dir/manifest.json`): formats,
        files with SHA-256, input/output specs, versions, and per artifact
        the max abs diff and top-1 agreement with Keras. Float artifacts must
        be within `tolerance` with 100 % top-1 agreement or `ExportError` is
        raised; quantized ones are reported.

    Examples:
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
    _check_options(formats, quantization, representative_data, batch_size, io_type)
    model, provenance = _model_to_export(model)
    metadata = describe(model, batch_size, labels, input_range, io_type)
    out_dir = check_out_dir(out_dir, overwrite)
    if representative_data is not None:
        representative_data = check_finite_images(representative_data, "representative_data")
    parity_inputs = _parity_inputs(model, parity_inputs, representative_data)
    expected = _keras_outputs(model, parity_inputs)
    with staging.staging_folder(out_dir) as folder:
        # Again, holding the folder's lock: another export may have filled it since.
        check_out_dir(out_dir, overwrite)
        artifacts, notes = convert(
            model,
            folder,
            formats,
            quantization,
            representative_data,
            opset,
            batch_size=batch_size,
            io_type=io_type,
            metadata=metadata,
        )
        notes["metadata"] = metadata
        parity = check_parity(artifacts, expected, parity_inputs, quantization, tolerance)
        manifest = build_manifest(
            model, artifacts, notes, parity, quantization, provenance, len(parity_inputs)
        )
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        write_marker(folder, EXPORT_MARKER)
        staging.publish(folder, out_dir, is_earlier_export=_is_earlier_export)
    return manifest
