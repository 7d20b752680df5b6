"""Inference time of the CC block's two formulations, side by side.

The CC paper's CIFAR-10 VGG-like net (width 32, 32x32x3) with a reduced CC
block after every conv, built twice with the same weights: every block with
`formulation="multiply_sum"` (what the default "auto" runs at inference and
exports) and with `formulation="batched_matmul"` (what it runs while training).
Timed, interleaved call by call, at batch 1 and at a large batch:

- Keras `predict_on_batch` on this process's backend (`KERAS_BACKEND`);
- on TensorFlow also ONNX Runtime (CPU, one thread) on each model's ONNX file
  (tf2onnx, as `export_model` and Keras' `model.export(format="onnx")` write it).

LiteRT is timed by `benchmarks/export_latency.py` (its `vgg_like+cc (batched_matmul)`
row). The ratio reported is multiply_sum / batched_matmul at the 10th percentile
and the median of the rounds.

    python -m benchmarks.cc_formulations                      # TensorFlow + ONNX Runtime, ~2 min
    KERAS_BACKEND=jax .venv-jax/bin/python -m benchmarks.cc_formulations --output \
        benchmarks/results/cc_formulations_jax.json          # JAX
    python -m benchmarks.cc_formulations --quick              # a smoke run

Writes benchmarks/results/cc_formulations.json (or `--output`).
"""

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.interleaved_timing import machine  # noqa: E402
from benchmarks.interleaved_timing import time_interleaved  # noqa: E402
from keras_memblocks.layers import set_cc_formulation  # noqa: E402
from keras_memblocks.models import vgg_like  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "cc_formulations.json"
FORMS = ("multiply_sum", "batched_matmul")


def build(width):
    """The two nets, same weights (blocks perturbed off the identity)."""
    nets = {}
    for form in FORMS:
        keras.utils.set_random_seed(0)
        nets[form] = vgg_like(
            "cifar10", width=width, num_classes=10, blocks={"block": "cc", "after": "conv"}
        )
        set_cc_formulation(nets[form], form)
    rng = np.random.default_rng(0)
    weights = [np.asarray(w) + 0.1 * rng.normal(size=w.shape) for w in nets[FORMS[0]].weights]
    for net in nets.values():
        net.set_weights(weights)
    return nets


def onnx_session(net, folder):
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    path = Path(folder) / f"{net.name}-{id(net)}.onnx"
    function = tf.function(lambda image: net(image, training=False))
    spec = tf.TensorSpec((None, *net.input.shape[1:]), tf.float32)
    tf2onnx.convert.from_function(function, input_signature=(spec,), output_path=str(path))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--large-batch", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="width 4, 3 rounds, batch 8")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.width, args.large_batch = 3, 4, 8
    backend = keras.backend.backend()
    nets = build(args.width)
    rng = np.random.default_rng(1)
    calls = {}
    with tempfile.TemporaryDirectory() as folder:
        sessions = {}
        if backend == "tensorflow":
            sessions = {form: onnx_session(net, folder) for form, net in nets.items()}
        for batch in (1, args.large_batch):
            x = rng.random((batch, 32, 32, 3), dtype=np.float32)
            outputs = {form: np.asarray(net.predict_on_batch(x)) for form, net in nets.items()}
            np.testing.assert_allclose(*outputs.values(), atol=1e-4)  # the same, to float rounding
            for form, net in nets.items():
                calls[(f"keras ({backend})", batch, form)] = lambda n=net, x=x: n.predict_on_batch(
                    x
                )
            for form, session in sessions.items():
                feed = {session.get_inputs()[0].name: x}
                calls[("onnxruntime", batch, form)] = lambda s=session, f=feed: s.run(None, f)
        for call in calls.values():  # traces, compiles, warms up
            call()
        times = time_interleaved(calls, args.rounds)
    rows = []
    for (runtime, batch, form), seconds in times.items():
        if form != FORMS[0]:
            continue
        other = sorted(times[(runtime, batch, FORMS[1])])
        seconds = sorted(seconds)

        def q10(values):
            return values[len(values) // 10]

        rows.append(
            {
                "runtime": runtime,
                "batch": batch,
                "multiply_sum_ms": {
                    "q10": 1e3 * q10(seconds),
                    "median": 1e3 * statistics.median(seconds),
                },
                "batched_matmul_ms": {
                    "q10": 1e3 * q10(other),
                    "median": 1e3 * statistics.median(other),
                },
                "ratio_q10": round(q10(seconds) / q10(other), 3),
                "ratio_median": round(statistics.median(seconds) / statistics.median(other), 3),
            }
        )
        print(
            f"{runtime:20s} batch {batch:4d}: multiply_sum / batched_matmul "
            f"{rows[-1]['ratio_q10']:.2f}x (q10), {rows[-1]['ratio_median']:.2f}x (median)"
        )
    result = {
        "machine": machine(),
        "net": f"vgg_like cifar10 width {args.width}, reduced CC after every conv",
        "rounds": args.rounds,
        "quick": args.quick,
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
