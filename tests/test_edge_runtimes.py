"""The exported files in the runtimes a device uses, not only the two we ship with.

A matrix of block x format x runtime on nets trained on the digits (trained,
so that near-ties do not hide errors): every TFLite file in LiteRT with
XNNPACK, LiteRT's optimized builtins without delegate and its reference
kernels (`BUILTIN_REF`, what a port to a new CPU starts from), float32 and
int8 files in TensorFlow Lite for Microcontrollers (pip `tflite-micro`),
the ONNX file in ONNX Runtime and OpenVINO (f32 precision hint; so is the
float32 TFLite file). None of these runtimes is ours.

Thresholds: float32 files, those of `export_model`'s parity check (max abs
diff 1e-4, every top-1 the same as Keras). A quantized file is compared with
itself in LiteRT's optimized builtins: every runtime within 0.1 (int8: 26
steps of the softmax's 1/256; XNNPACK's int8 kernels round their own way, 6
to 14 steps off), 1e-2 (dynamic range: XNNPACK quantizes activations on the
fly its own way) or 1e-3 (float16) of it, with at least 98 % of its top-1
classes; and with Keras, at least 90 % top-1 agreement. The reference
kernels' wrong int8 SUM was 0.81 off and 70 %: far outside.

Known and kept in view rather than hidden (`KNOWN`): TFLite Micro has no
int8 EXP, so the Gaussian map's int8 file does not load there; and that
file is lossy in every LiteRT kernel set (91 % top-1 agreement with Keras,
XNNPACK 0.28 off the builtins), the int8 exponential of a squared distance
being coarse. Each is checked to be still as measured.

`python -m tests.test_edge_runtimes > benchmarks/results/edge_runtimes.json`
writes the whole matrix (what the export guide's runtime tables show).
"""

import json
import sys

import keras
import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="the [test] extra's tflite-micro")
pytest.importorskip("openvino", reason="the [test] extra's openvino")

from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from ai_edge_litert.interpreter import OpResolverType  # noqa: E402

from keras_memblocks.data import load_digits  # noqa: E402
from keras_memblocks.edge import dequantize  # noqa: E402
from keras_memblocks.edge import quantize  # noqa: E402
from keras_memblocks.export import export_model  # noqa: E402
from keras_memblocks.export import run_onnx  # noqa: E402
from keras_memblocks.models import vgg_like  # noqa: E402

BLOCKS = {
    "plain": None,
    "se": {"block": "se", "after": "conv"},
    "cbam": {"block": "cbam", "after": "conv"},
    "cc-reduced-bilinear": {"block": "cc", "after": "conv", "variant": "reduced"},
    "cc-full-gaussian": {"block": "cc", "after": "conv", "variant": "full", "emp": "gaussian"},
    "cc-scalar": {"block": "cc", "after": "conv", "variant": "scalar"},
    "cc-reduced-sine": {"block": "cc", "after": "conv", "variant": "reduced", "emp": "sine"},
    "sr": {"block": "sr", "after": "conv", "num_memory_blocks": 2},
}
QUANTIZATIONS = (None, "float16", "dynamic_range", "int8")
BASELINE = "litert-builtin"
LIMITS = {"tflite-int8": 0.1, "tflite-dynamic_range": 1e-2, "tflite-float16": 1e-3}
# (block, format) -> {runtime: "unsupported"} or the bounds it is held to.
KNOWN = {
    ("cc-full-gaussian", "tflite-int8"): {
        "tflite-micro": "unsupported",  # no int8 EXP in TFLite Micro
        "keras_top1": 0.85,
        "max_abs_diff": 0.4,
    },
}
NUM_IMAGES = 200  # held-out digits per cell


def _digits():
    (x_train, y_train), (x_test, _) = load_digits(28, channels=1)
    return x_train, y_train, x_test[:NUM_IMAGES]


def trained(block, x_train, y_train):
    keras.utils.set_random_seed(0)
    model = vgg_like("mnist", width=4, blocks=BLOCKS[block])
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    return model


# === The runtimes ===


def litert(path, images, resolver):
    """LiteRT: `resolver` None is the default (XNNPACK delegate)."""
    options = {} if resolver is None else {"experimental_op_resolver_type": resolver}
    interpreter = Interpreter(model_path=str(path), **options)
    source = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(source["index"], list(images.shape))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(source["index"], quantize(images, source))
    interpreter.invoke()
    return dequantize(interpreter.get_tensor(target["index"]), target)


def tflite_micro(path, images):
    """TensorFlow Lite for Microcontrollers, one image at a time (its batch is
    the file's stored one, 1)."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(path))
    source, target = interpreter.get_input_details(0), interpreter.get_output_details(0)

    def as_litert(details):
        parameters = details["quantization_parameters"]
        scales, zero_points = parameters["scales"], parameters["zero_points"]
        quantization = (float(scales[0]), int(zero_points[0])) if len(scales) else (0.0, 0)
        return {"dtype": details["dtype"], "quantization": quantization}

    outputs = []
    for image in images:
        interpreter.set_input(quantize(image[None], as_litert(source)), 0)
        interpreter.invoke()
        outputs.append(dequantize(interpreter.get_output(0), as_litert(target))[0])
    return np.stack(outputs)


def openvino(path, images):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    return np.asarray(compiled(images)[compiled.output(0)])


TFLITE_RUNTIMES = {
    "litert-xnnpack": lambda path, x: litert(path, x, None),
    "litert-builtin": lambda path, x: litert(
        path, x, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    ),
    "litert-reference": lambda path, x: litert(path, x, OpResolverType.BUILTIN_REF),
    "tflite-micro": tflite_micro,
    "openvino": openvino,
}
ONNX_RUNTIMES = {"onnxruntime": run_onnx, "openvino": openvino}
# TFLite Micro runs float32 and int8 files; OpenVINO reads float32 TFLite.
TFLITE_MICRO_FORMATS = ("float32", "int8")


def _agreement(expected, got):
    return {
        "max_abs_diff": float(np.abs(expected - got).max()),
        "top1_agreement": float(np.mean(expected.argmax(-1) == got.argmax(-1))),
    }


def matrix_row(block, folder, x_train, y_train, images):
    """`{format: {runtime: {"vs_keras": ..., "vs_xnnpack": ...}}}` for one block."""
    model = trained(block, x_train, y_train)
    expected = model.predict(images, verbose=0)
    row = {}
    for quantization in QUANTIZATIONS:
        name = quantization or "float32"
        formats = ("tflite", "onnx") if quantization is None else ("tflite",)
        manifest = export_model(
            model,
            folder / f"{block}-{name}",
            formats=formats,
            quantization=quantization,
            representative_data=x_train[:200],
            parity_inputs=images[:32],
        )
        path = folder / f"{block}-{name}" / manifest["files"]["tflite"]["path"]
        runtimes = dict(TFLITE_RUNTIMES)
        if name not in TFLITE_MICRO_FORMATS:
            del runtimes["tflite-micro"]
        if name != "float32":
            del runtimes["openvino"]
        baseline = runtimes[BASELINE](path, images)
        cells = {}
        for runtime, run in runtimes.items():
            try:
                outputs = run(path, images)
            except RuntimeError as error:  # the runtime refused the file
                cells[runtime] = {"unsupported": str(error)[-300:]}
                continue
            cells[runtime] = {
                "vs_keras": _agreement(expected, outputs),
                "vs_builtin": _agreement(baseline, outputs),
            }
        row[f"tflite-{name}"] = cells
        if "onnx" in formats:
            onnx_path = folder / f"{block}-{name}" / "model.onnx"
            row["onnx"] = {
                runtime: {"vs_keras": _agreement(expected, run(onnx_path, images))}
                for runtime, run in ONNX_RUNTIMES.items()
            }
    return row


def check_row(block, row):
    """The failures of one block's row: `[(format, runtime, why)]`."""
    failures = []
    for file_format, runtimes in row.items():
        quantized = file_format not in ("tflite-float32", "onnx")
        for runtime, result in runtimes.items():
            known = KNOWN.get((block, file_format), {})
            if "unsupported" in result or known.get(runtime) == "unsupported":
                if not ("unsupported" in result and known.get(runtime) == "unsupported"):
                    failures.append((file_format, runtime, result))
                continue
            keras_result = result["vs_keras"]
            if not quantized:
                if keras_result["max_abs_diff"] > 1e-4 or keras_result["top1_agreement"] < 1:
                    failures.append((file_format, runtime, keras_result))
                continue
            near = result["vs_builtin"]
            limit = known.get("max_abs_diff", LIMITS[file_format])
            if near["max_abs_diff"] > limit or near["top1_agreement"] < 0.98:
                failures.append((file_format, runtime, {"vs_builtin": near}))
            if keras_result["top1_agreement"] < known.get("keras_top1", 0.9):
                failures.append((file_format, runtime, {"vs_keras": keras_result}))
    return failures


@pytest.fixture(scope="module")
def digits():
    return _digits()


# Every row in make test (10-25 s each on 2 cores), and in make test-edge.
@pytest.mark.parametrize("block", BLOCKS)
def test_every_runtime_agrees(block, digits, tmp_path):
    row = matrix_row(block, tmp_path, *digits)
    assert set(row) == {"tflite-float32", "tflite-float16", "tflite-dynamic_range"} | {
        "tflite-int8",
        "onnx",
    }
    assert set(row["tflite-int8"]) == set(TFLITE_RUNTIMES) - {"openvino"}
    assert check_row(block, row) == []


def test_cc_int8_sum_is_exact_on_the_reference_kernels(digits, tmp_path):
    # Regression: the CC block's contractions were int8 SUMs, which LiteRT's
    # reference kernels computed wrong (67 % agreement with Keras on this
    # net, the optimized kernels 97 %); they are now MEANs of scaled products
    # (excitation_maps.sum_as_mean). The reference SUM itself is still wrong:
    # checked here so that the day it is fixed, the workaround can go.
    x_train, y_train, images = digits
    model = trained("cc-reduced-bilinear", x_train, y_train)
    manifest = export_model(
        model,
        tmp_path / "int8",
        formats=("tflite",),
        quantization="int8",
        representative_data=x_train[:200],
        parity_inputs=images[:32],
    )
    path = tmp_path / "int8" / manifest["files"]["tflite"]["path"]
    from keras_memblocks.export.runtimes import xnnpack_pieces

    assert xnnpack_pieces(path) >= 1
    reference = TFLITE_RUNTIMES["litert-reference"](path, images)
    optimized = TFLITE_RUNTIMES["litert-builtin"](path, images)
    assert _agreement(optimized, reference)["max_abs_diff"] <= 3 / 256
    assert _reference_sum_error() > 1.0  # LiteRT's own bug, still there


def _reference_sum_error():
    """The reference int8 SUM's largest error on a (1, 121, 4, 16) sum over
    axis 1 of standard-normal values (sums up to ~12; the optimized kernel is
    off by ~0.2, a quantization step of the sum)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    data = [rng.normal(size=(1, 121, 4, 16)).astype("float32") for _ in range(20)]
    function = tf.function(
        lambda x: tf.reduce_sum(x, axis=1),
        input_signature=[tf.TensorSpec((1, 121, 4, 16), tf.float32)],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], function
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([d] for d in data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    interpreter = Interpreter(
        model_content=converter.convert(), experimental_op_resolver_type=OpResolverType.BUILTIN_REF
    )
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], data[0])
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return float(np.abs(got - data[0].sum(axis=1)).max())


def test_sr_runs_in_tflite_micro_at_any_stored_batch(digits, tmp_path):
    # Regression: SR's squeeze was a (B*H*W, C) reshape and matmul; a
    # dynamic-batch file stores that reshape's shape as [1, C], which TFLite
    # Micro (it never resizes) refused: "num_input_elements !=
    # num_output_elements (4096 != 64)". It is now the 1x1 convolution itself.
    x_train, y_train, images = digits
    model = trained("sr", x_train, y_train)
    expected = model.predict(images[:20], verbose=0)
    for batch_size in (None, 1):
        folder = tmp_path / f"batch-{batch_size}"
        manifest = export_model(
            model, folder, formats=("tflite",), batch_size=batch_size, parity_inputs=images[:8]
        )
        outputs = tflite_micro(folder / manifest["files"]["tflite"]["path"], images[:20])
        assert _agreement(expected, outputs)["max_abs_diff"] <= 1e-4


if __name__ == "__main__":  # the whole matrix, as JSON (benchmarks/results/edge_runtimes.json)
    import tempfile
    from importlib.metadata import version
    from pathlib import Path

    from benchmarks.interleaved_timing import machine

    data = _digits()
    packages = ("ai-edge-litert", "tflite-micro", "onnxruntime", "openvino", "tensorflow")
    results = {"machine": {**machine(), "runtimes": {name: version(name) for name in packages}}}
    for name in sys.argv[1:] or list(BLOCKS):
        with tempfile.TemporaryDirectory() as folder:
            results[name] = matrix_row(name, Path(folder), *data)
            results[name]["failures"] = [list(f[:2]) for f in check_row(name, results[name])]
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))
