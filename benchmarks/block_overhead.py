"""Time cost of the blocks: the same network with and without them.

Networks (batch 128, 32x32x3 input, CIFAR-100 head):
- the CC paper's CIFAR-100 VGG-like net at width 32 (8 convs), plain and with
  a CC block after every conv. `input_independent_scalar` (one learned
  multiply per channel) is the floor any block must pay; `reduced` is the
  paper's best variant.
- the same conv stack with one SR block (P=10, U=8) after its third stage;
- the same net with Squeeze-and-Excitation after every conv: the usual
  input-dependent gate, for comparison.

Every model's train step (`train_on_batch`) and inference step
(`predict_on_batch`) are timed, graph mode and XLA (`jit_compile=True`),
interleaved step by step so that machine noise hits all models alike. The
ratio reported is block / plain at the 20th percentile and the median of
the step times (low quantiles are least disturbed by noise on a shared CPU).

    python -m benchmarks.block_overhead            # ~10 min on 2 CPU cores
    python -m benchmarks.block_overhead --repeats 5 --batch-size 32   # quick

Writes benchmarks/results/block_overhead.json.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_memblocks  # noqa: E402
from benchmarks.interleaved_timing import machine  # noqa: E402
from benchmarks.interleaved_timing import time_interleaved  # noqa: E402
from keras_memblocks.layers import ContextualConvBlock2D  # noqa: E402
from keras_memblocks.layers import excitation_maps  # noqa: E402
from keras_memblocks.models import insert_blocks  # noqa: E402
from keras_memblocks.models import vgg_like  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "block_overhead.json"


class MapRecomputedInBackward(excitation_maps.BilinearExcitation):
    """The closed-form backward before the map was kept: the forward and
    the input gradient each two broadcast multiplies, `x * rows * columns`.
    For the side-by-side row of the table."""

    def __call__(self, inputs, coefficients):
        @keras.ops.custom_gradient
        def excite(inputs, coefficients):
            rows, columns = self.profiles(coefficients, inputs.dtype)

            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args
                return (
                    upstream * rows * columns,
                    self.coefficient_gradient(inputs, coefficients, upstream),
                )

            return inputs * rows * columns, grad

        return excite(inputs, coefficients)


def cifar100_vgg_like(
    width=32,
    block_variant=None,
    sr_after_stage=None,
    autodiff=False,
    se_after_every_conv=False,
    map_recomputed=False,
):
    """The CC paper's CIFAR-100 net (`vgg_like`), with CC blocks after every
    conv (`block_variant`), one SR block (P=10, U=8) after a stage's convs,
    or SE after every conv.

    `autodiff=True` trains the bilinear map by plain autodiff instead of its
    closed-form gradient, `map_recomputed=True` by the closed-form gradient
    as it was before it kept the map: earlier formulations, for comparison."""
    blocks = None
    if block_variant is not None:
        blocks = {"block": "cc", "after": "conv", "variant": block_variant}
    if se_after_every_conv:
        blocks = {"block": "se", "after": "conv"}
    model = vgg_like("cifar100", width=width, blocks=blocks)
    for layer in model.layers:
        if isinstance(layer, ContextualConvBlock2D) and layer._bilinear_excitation is not None:
            if autodiff:
                layer._bilinear_excitation = None
            elif map_recomputed:
                excitation = layer._bilinear_excitation
                layer._bilinear_excitation = MapRecomputedInBackward(
                    excitation.height, excitation.width, excitation.channels
                )
    if sr_after_stage is not None:
        model = insert_blocks(
            model,
            "sr",
            after=[f"stage{sr_after_stage}_conv2"],
            num_memory_blocks=10,
            hidden_units=8,
        )
    return model


MODELS = {
    "plain": dict(),
    "cc_input_independent_scalar (floor)": dict(block_variant="input_independent_scalar"),
    "cc_reduced": dict(block_variant="reduced"),
    "cc_reduced (autodiff backward)": dict(block_variant="reduced", autodiff=True),
    "cc_reduced (map recomputed in backward)": dict(block_variant="reduced", map_recomputed=True),
    "cc_scalar": dict(block_variant="scalar"),
    "cc_input_independent": dict(block_variant="input_independent"),
    "sr_P10_after_stage3": dict(sr_after_stage=3),
    "se_after_every_conv": dict(se_after_every_conv=True),
}


def xla_cpu_library_fusions(model, x):
    """JAX on a CPU: how many pieces XLA hands to its CPU kernel library
    (YNNPACK/XNNPACK fusions) in the model's compiled inference step.

    XLA fuses a plain conv net into very few such pieces; an op the library
    does not take (a gather, a transpose, a slice) between two of them
    splits the piece, and each split costs a full pass over the feature
    map. None on other backends and devices."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    if jax.default_backend() != "cpu":
        return None
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def infer(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    text = jax.jit(infer).lower(trainable, non_trainable, x).compile().as_text()
    return sum(text.count(f'"kind":"{kind}"') for kind in ("__ynn_fusion", "__xnn_fusion"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--modes", nargs="+", default=["graph", "xla"])
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--width", type=int, default=32, help="first conv width of the VGG-like net (paper: 32)"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; valid: {list(MODELS)}")

    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 100, args.batch_size)
    results = {
        "machine": machine(),
        "keras_memblocks": keras_memblocks.__version__,
        "batch_size": args.batch_size,
        "width": args.width,
        "repeats": args.repeats,
        "statistic": "ratio of step times, block model / plain model",
        "modes": {},
    }
    for mode in args.modes:
        steps, params, fusions = {}, {}, {}
        for name in ["plain"] + [m for m in args.models if m != "plain"]:
            keras.utils.set_random_seed(0)
            model = cifar100_vgg_like(width=args.width, **MODELS[name])
            model.compile(
                optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss="sparse_categorical_crossentropy",
                jit_compile=(mode == "xla"),
            )
            params[name] = model.count_params()
            fusions[name] = xla_cpu_library_fusions(model, x)
            steps[f"{name}|train"] = lambda m=model: m.train_on_batch(x, y)
            steps[f"{name}|inference"] = lambda m=model: m.predict_on_batch(x)
        print(f"[{mode}] warm-up (tracing and compiling {len(steps)} steps)")
        time_interleaved(steps, args.warmup)
        print(f"[{mode}] timing {args.repeats} interleaved rounds")
        times = time_interleaved(steps, args.repeats)
        mode_results = {}
        for name in params:
            entry = {"parameters": params[name]}
            if fusions[name] is not None:
                entry["xla_cpu_library_fusions"] = fusions[name]
            for kind in ("train", "inference"):
                t = np.array(times[f"{name}|{kind}"])
                base = np.array(times[f"plain|{kind}"])
                entry[kind] = {
                    "median_ms": round(1e3 * float(np.median(t)), 2),
                    "p20_ms": round(1e3 * float(np.quantile(t, 0.2)), 2),
                    "ratio_p20": round(float(np.quantile(t, 0.2) / np.quantile(base, 0.2)), 3),
                    "ratio_median": round(float(np.median(t) / np.median(base)), 3),
                }
            mode_results[name] = entry
            train, inference = entry["train"], entry["inference"]
            pieces = f"  XLA CPU library fusions {fusions[name]}" if fusions[name] else ""
            print(
                f"  {name:38s} params {params[name]:>9,d}  "
                f"train x{train['ratio_p20']:.3f} (median x{train['ratio_median']:.3f})  "
                f"inference x{inference['ratio_p20']:.3f} (median x{inference['ratio_median']:.3f})"
                + pieces
            )
        results["modes"][mode] = mode_results
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}\n")
    print(markdown_table(results))


def markdown_table(results):
    """The README's table: one row per model, train / inference ratios."""
    modes = list(results["modes"])
    header = (
        "| model | parameters | "
        + " | ".join(f"{mode} train | {mode} inference" for mode in modes)
        + " |"
    )
    lines = [header, "|" + "---|" * (2 + 2 * len(modes))]
    first = results["modes"][modes[0]]
    for name in first:
        cells = [name, f"{first[name]['parameters']:,}"]
        for mode in modes:
            entry = results["modes"][mode][name]
            cells += [
                f"{entry['train']['ratio_p20']:.2f}x",
                f"{entry['inference']['ratio_p20']:.2f}x",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
