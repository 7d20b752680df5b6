"""Batch-1 latency of exported models, with and without blocks.

Each network is exported with `keras_memblocks.export.export_model` (so
every artifact has passed its parity check) as float32 TFLite, int8 TFLite
and ONNX, and the Keras model itself is timed as a traced `tf.function`.
Runtimes: LiteRT's interpreter (`ai_edge_litert`, XNNPACK delegate applied
by default), ONNX Runtime's CPU provider, TensorFlow for Keras; all with the
same number of threads (default 1).

Networks (random-but-fixed weights, batch norm calibrated on digits; latency
does not depend on training):
- the CC paper's CIFAR-10 VGG-like net (width 32, 32x32x3): plain, with a
  reduced CC block after every conv, and with one SR block (P=10) after
  stage 3; and the CC net once more with its blocks'
  `formulation="batched_matmul"` (the default "auto" exports the
  "multiply_sum" form), to compare the two in one run;
- `keras.applications.MobileNetV2` (224x224x3): plain, with a reduced CC
  block after the last layer of four stages, and with one SR block (P=10)
  after stage 5 (14x14x96).

One timing round calls every artifact once, in turn, so machine noise hits
all alike; the median over rounds is reported, and the ratios block / plain
(per runtime) and int8 / float32 (TFLite).

    python -m benchmarks.export_latency             # ~5 min on 2 CPU cores
    python -m benchmarks.export_latency --rounds 5 --models vgg_like vgg_like+cc   # quick
    python -m benchmarks.export_latency --batch-size 1 --models vgg_like vgg_like+se \
        vgg_like+cc vgg_like+sr --output benchmarks/results/export_latency_batch1.json

Writes benchmarks/results/export_latency.json.
"""

import argparse
import json
import os
import statistics
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_memblocks  # noqa: E402
from benchmarks.interleaved_timing import machine  # noqa: E402
from benchmarks.interleaved_timing import time_interleaved  # noqa: E402
from keras_memblocks.data import load_digits  # noqa: E402
from keras_memblocks.export import export_model  # noqa: E402
from keras_memblocks.export import tflite_interpreter  # noqa: E402
from keras_memblocks.export.runtimes import xnnpack_pieces  # noqa: E402
from keras_memblocks.layers import set_cc_formulation  # noqa: E402
from keras_memblocks.models import calibrate_batch_norm  # noqa: E402
from keras_memblocks.models import insert_blocks  # noqa: E402
from keras_memblocks.models import vgg_like  # noqa: E402
from keras_memblocks.utils import compat  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "export_latency.json"
MOBILENET_STAGE_ENDS = ["block_2_add", "block_5_add", "block_12_add", "block_15_add"]


def _mobilenet_v2():
    return keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))


MODELS = {
    "vgg_like": lambda: vgg_like("cifar10", width=32),
    "vgg_like+se": lambda: vgg_like("cifar10", width=32, blocks={"block": "se", "after": "conv"}),
    "vgg_like+cc": lambda: vgg_like(
        "cifar10", width=32, blocks={"block": "cc", "after": "conv", "variant": "reduced"}
    ),
    "vgg_like+cc (batched_matmul)": lambda: MODELS["vgg_like+cc"](),
    "vgg_like+sr": lambda: insert_blocks(
        vgg_like("cifar10", width=32), "sr", ["stage3_conv1"], num_memory_blocks=10
    ),
    "mobilenet_v2": _mobilenet_v2,
    "mobilenet_v2+cc": lambda: insert_blocks(_mobilenet_v2(), "cc", MOBILENET_STAGE_ENDS),
    "mobilenet_v2+sr": lambda: insert_blocks(
        _mobilenet_v2(), "sr", ["block_12_add"], num_memory_blocks=10
    ),
}


# Models whose CC blocks get another formulation than the default.
FORMULATIONS = {"vgg_like+cc (batched_matmul)": "batched_matmul"}


def _perturb_blocks(model, seed=0):
    """Non-identity blocks: SR memories and the CC coefficient layer start at 0."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.endswith(("_cc", "_sr")):
            for weight in layer.weights:
                weight.assign(np.asarray(weight) + 0.1 * rng.normal(size=weight.shape))


def _onnx_runner(path, image, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads must not spin into the next artifact's timing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: image}
    return lambda: session.run(None, feed)


def _keras_runner(model, image):
    function = tf.function(lambda x: model(x, training=False))
    tensor = tf.constant(image)
    return lambda: function(tensor).numpy()


def graph_ops(out):
    """Op counts of the float32 TFLite and ONNX graphs (what a block adds),
    and the XNNPACK partitions of both TFLite files."""
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    tflite = compat.litert_ops(Interpreter(model_path=str(out / "float" / "model.tflite")))
    onnx_graph = onnx.load(str(out / "float" / "model.onnx")).graph
    return {
        "tflite_float32": dict(sorted(Counter(op["op_name"] for op in tflite).items())),
        "onnx": dict(sorted(Counter(node.op_type for node in onnx_graph.node).items())),
        "xnnpack_partitions": {
            "tflite_float32": xnnpack_pieces(out / "float" / "model.tflite"),
            "tflite_int8": xnnpack_pieces(out / "int8" / "model_int8.tflite"),
        },
    }


def build_runners(name, work_dir, threads, calibration, batch_size=None):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    _perturb_blocks(model)
    size = model.input.shape[1]
    (x_train, _), (x_test, _) = load_digits(size)
    # Untrained, MobileNetV2's activations vanish (constant outputs): batch
    # norm statistics from real images make the parity checks meaningful.
    calibrate_batch_norm(model, x_train[:32])
    out = Path(work_dir) / name
    if name in FORMULATIONS:
        set_cc_formulation(model, FORMULATIONS[name])
    float_export = export_model(
        model,
        out / "float",
        formats=("tflite", "onnx"),
        parity_inputs=x_test[:8],
        batch_size=batch_size,
    )
    int8_export = export_model(
        model,
        out / "int8",
        formats=("tflite",),
        quantization="int8",
        representative_data=x_train[:calibration],
        parity_inputs=x_test[:64],
        batch_size=batch_size,
    )
    image = x_test[:1]
    runners = {
        "keras": _keras_runner(model, image),
        "tflite_float32": tflite_interpreter(out / "float" / "model.tflite", image, threads).invoke,
        "tflite_int8": tflite_interpreter(
            out / "int8" / "model_int8.tflite", image, threads
        ).invoke,
        "onnx": _onnx_runner(out / "float" / "model.onnx", image, threads),
    }
    parity = {
        "tflite_float32": float_export["parity"]["tflite"],
        "onnx": float_export["parity"]["onnx"],
        "tflite_int8": int8_export["parity"]["tflite"],
    }
    return runners, parity, model.count_params(), graph_ops(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads of every runtime (default 1: stable numbers on a shared "
        "machine, and the usual edge setting)",
    )
    parser.add_argument(
        "--calibration", type=int, default=128, help="digits images for int8 calibration"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="export every file with this fixed batch (memblocks export --batch-size; "
        "1: static shapes); default: any batch, timed at 1",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    runners, parity, params, ops = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as work_dir:
        for name in args.models:
            print(f"exporting {name} (float32 TFLite + ONNX, int8 TFLite; parity checked)")
            model_runners, parity[name], params[name], ops[name] = build_runners(
                name, work_dir, args.threads, args.calibration, args.batch_size
            )
            runners.update({(name, key): run for key, run in model_runners.items()})
        print(f"timing {len(runners)} artifacts, {args.rounds} rounds")
        time_interleaved(runners, args.warmup)
        times = time_interleaved(runners, args.rounds)

    medians = {key: 1000 * statistics.median(values) for key, values in times.items()}
    results = {
        "machine": machine(),
        "versions": export_versions(),
        "threads": args.threads,
        "rounds": args.rounds,
        "batch_size": 1,
        "file_batch": args.batch_size or "any (dynamic)",
        "statistic": "median milliseconds per batch-1 call over interleaved rounds",
        "models": {},
    }
    for name in args.models:
        plain = name.split("+")[0]
        entry = {
            "parameters": params[name],
            "latency_ms": {},
            "parity": parity[name],
            "graph_ops": ops[name],
        }
        for (model_name, runtime), median in medians.items():
            if model_name != name:
                continue
            entry["latency_ms"][runtime] = round(median, 3)
        if plain != name and plain in args.models:
            entry["ratio_vs_plain"] = {
                runtime: round(medians[(name, runtime)] / medians[(plain, runtime)], 3)
                for runtime in entry["latency_ms"]
            }
        entry["int8_vs_float32_tflite"] = round(
            medians[(name, "tflite_int8")] / medians[(name, "tflite_float32")], 3
        )
        results["models"][name] = entry
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown_table(results))
    print(f"wrote {args.output}")


def export_versions():
    import ai_edge_litert
    import onnxruntime

    return {
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
        "keras_memblocks": keras_memblocks.__version__,
    }


def markdown_table(results):
    runtimes = ["keras", "tflite_float32", "tflite_int8", "onnx"]
    lines = [
        "| model | " + " | ".join(f"{r} ms (x plain)" for r in runtimes) + " | int8 / float32 |",
        "|---" * (len(runtimes) + 2) + "|",
    ]
    for name, entry in results["models"].items():
        cells = []
        for runtime in runtimes:
            cell = f"{entry['latency_ms'][runtime]:.2f}"
            if "ratio_vs_plain" in entry:
                cell += f" ({entry['ratio_vs_plain'][runtime]:.2f}x)"
            cells.append(cell)
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {entry['int8_vs_float32_tflite']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
