"""Where one CC block's time goes: its coefficient path against the whole block.

For one reduced CC block (bilinear EMP, 11x11 grid) at the feature-map sizes
of a network, times, interleaved in one process on TensorFlow:

- `block`: the block's call;
- `coefficients`: its coefficient path alone (sampling the grid, the
  per-channel layers, tanh), `layer._coefficients`;
- `floor`: one learned multiply per channel, the least a block can cost;
- `empty`: a compiled function that does nothing but return, the fixed
  cost of a call, subtracted from the others.

each in inference and as a training step (forward and the gradient with
respect to the input and the block's weights), in graph mode and with XLA.
The issue's target: the coefficient path at most 10 % of the block's time.
Reported: `coefficient_share` = (coefficients - empty) / (block - empty) and
the block's cost in floors, (block - empty) / (floor - empty), at the
median of the rounds.

    python -m benchmarks.cc_block_parts                 # the CC paper's CIFAR-100 net, batch 128
    python -m benchmarks.cc_block_parts --net demo      # `make demo`'s net, batch 64

Writes benchmarks/results/cc_block_parts_<net>.json.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_memblocks  # noqa: E402
from benchmarks.interleaved_timing import machine  # noqa: E402
from benchmarks.interleaved_timing import time_interleaved  # noqa: E402
from keras_memblocks.layers import ContextualConvBlock2D  # noqa: E402

RESULTS = Path(__file__).parent / "results"

# The (height, width, channels) after each conv that carries a block, and the batch.
NETS = {
    # The CC paper's CIFAR-100 VGG-like net, width 32 (two convs per stage).
    "cifar100": {"batch": 128, "maps": [(32, 32, 32), (16, 16, 64), (8, 8, 128), (4, 4, 256)]},
    # `make demo`'s VGG-like net: CIFAR-10 layout, width 16 (one conv per stage).
    "demo": {"batch": 64, "maps": [(32, 32, 16), (16, 16, 32), (8, 8, 64), (4, 4, 128)]},
}


def part_functions(shape, jit_compile):
    """The four compiled functions of the module docstring, each as
    `{"inference": f, "train": f}` taking the input."""
    block = ContextualConvBlock2D("reduced")
    block.build(shape)
    scale = keras.Variable(np.ones(shape[-1], "float32"))

    def trained(forward, variables):
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(forward(x))
            return tape.gradient(loss, [x, *variables])

        return step

    parts = {
        "block": (lambda x, training: block(x, training=training), block.trainable_variables),
        "coefficients": (
            lambda x, training: block._coefficients(x, training=training),
            block.trainable_variables,
        ),
        "floor": (lambda x, training: x * scale, [scale]),
    }
    compiled = {}
    for name, (forward, variables) in parts.items():
        compiled[name] = {
            "inference": tf.function(lambda x, f=forward: f(x, False), jit_compile=jit_compile),
            "train": tf.function(
                trained(lambda x, f=forward: f(x, True), [v.value for v in variables]),
                jit_compile=jit_compile,
            ),
        }
    empty = tf.function(lambda x: x[0, 0, 0, 0], jit_compile=jit_compile)
    compiled["empty"] = {"inference": empty, "train": empty}
    return compiled


def summarize(times):
    """Milliseconds per part and the two ratios of the module docstring."""
    median = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    net = {name: max(median[name] - median["empty"], 1e-6) for name in median}
    return {
        "median_ms": {name: round(ms, 3) for name, ms in median.items()},
        "coefficient_share": round(net["coefficients"] / net["block"], 3),
        "block_in_floors": round(net["block"] / net["floor"], 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", choices=sorted(NETS), default="cifar100")
    parser.add_argument("--batch-size", type=int, help="default: the net's own")
    parser.add_argument(
        "--maps", type=int, help="time only the net's first N feature-map sizes (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--modes", nargs="+", choices=["graph", "xla"], default=["graph", "xla"])
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    net = NETS[args.net]
    batch = args.batch_size or net["batch"]
    output = args.output or RESULTS / f"cc_block_parts_{args.net}.json"
    results = {
        "machine": machine(),
        "keras_memblocks": keras_memblocks.__version__,
        "net": args.net,
        "batch_size": batch,
        "repeats": args.repeats,
        "statistic": "medians of interleaved rounds, less the empty call",
        "modes": {},
    }
    rng = np.random.default_rng(0)
    for mode in args.modes:
        rows = []
        for height, width, channels in net["maps"][: args.maps]:
            shape = (batch, height, width, channels)
            x = tf.constant(rng.standard_normal(shape, dtype=np.float32))
            functions = part_functions(shape, jit_compile=mode == "xla")
            entry = {"shape": list(shape)}
            for kind in ("inference", "train"):
                calls = {name: (lambda f=f[kind]: f(x)) for name, f in functions.items()}
                time_interleaved(calls, 2)  # trace and compile
                entry[kind] = summarize(time_interleaved(calls, args.repeats))
                print(
                    f"[{mode}] {str(shape):22s} {kind:9s} "
                    f"block {entry[kind]['median_ms']['block']:7.3f} ms  "
                    f"coefficient share {entry[kind]['coefficient_share']:.2f}  "
                    f"block = {entry[kind]['block_in_floors']:.2f} floors"
                )
            rows.append(entry)
        results["modes"][mode] = rows
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
