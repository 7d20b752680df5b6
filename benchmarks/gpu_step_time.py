"""Train-step and inference time of each block against the same net without it,
on a GPU, with Keras on JAX or PyTorch (no TensorFlow needed).

Pairs, block / plain, in one run:
- `resnet50_sr`: ImageNet ResNet50 (224x224, batch 128) with and without the
  SR block after module 3 (P=10, U=16). The SR paper: +0.5 % on a GPU
  (377 -> 379 ms, CIFAR-100 ResNet50, batch 128); target <= 1.02x.
- `vgg_like_cc`: the CC paper's CIFAR-100 VGG-like net (c=32, batch 128) with
  and without reduced CC after every conv; targets <= 1.15x train,
  <= 1.10x inference.

Each model is compiled with Keras' `jit_compile="auto"` (XLA on JAX) and
timed with `train_on_batch` / `predict_on_batch` on one fixed batch already in
memory, in float32 and in mixed bfloat16. The two models of a pair alternate
sample by sample (each sample: `--steps` calls in a row), so that clocks and
neighbours affect both alike. Every call returns its result to the host, so
a step includes Keras' dispatch (a fraction of a millisecond); on the small
VGG-like net that makes the ratio lean towards 1, which the JSON records
beside the absolute times.

    KERAS_BACKEND=jax python -m benchmarks.gpu_step_time        # on a GPU
    KERAS_BACKEND=torch python -m benchmarks.gpu_step_time
    KERAS_BACKEND=jax python -m benchmarks.gpu_step_time --tiny # CPU smoke run

Writes benchmarks/results/gpu_<device>_<backend>.json and prints a table.
"""

import argparse
import json
import re
from pathlib import Path

import keras
import numpy as np

from benchmarks.interleaved_timing import machine  # noqa: E402
from benchmarks.interleaved_timing import time_interleaved  # noqa: E402
from keras_memblocks.models import resnet50  # noqa: E402
from keras_memblocks.models import vgg_like  # noqa: E402

RESULTS = Path(__file__).parent / "results"

# name: (block builder, plain builder); a builder takes one of the pair's SIZES.
PAIRS = {
    "resnet50_sr": (
        lambda size: resnet50(
            size["classes"],
            input_shape=size["shape"],
            blocks={"block": "sr", "after": 3, "num_memory_blocks": 10, "hidden_units": 16},
        ),
        lambda size: resnet50(size["classes"], input_shape=size["shape"]),
    ),
    "vgg_like_cc": (
        lambda size: vgg_like(
            "cifar100",
            width=size["width"],
            num_classes=size["classes"],
            input_shape=size["shape"],
            blocks={"block": "cc", "after": "conv", "variant": "reduced"},
        ),
        lambda size: vgg_like(
            "cifar100", width=size["width"], num_classes=size["classes"], input_shape=size["shape"]
        ),
    ),
}
# The sizes, and --tiny: the same code at sizes a CPU runs in seconds,
# so the script never rots.
SIZES = {
    "resnet50_sr": {
        "full": dict(shape=(224, 224, 3), classes=1000, batch=128),
        "tiny": dict(shape=(32, 32, 3), classes=10, batch=2),
    },
    "vgg_like_cc": {
        "full": dict(shape=(32, 32, 3), classes=100, batch=128, width=32),
        "tiny": dict(shape=(32, 32, 3), classes=100, batch=4, width=4),
    },
}
TARGETS = {
    "resnet50_sr": {"train": 1.02, "inference": 1.02},
    "vgg_like_cc": {"train": 1.15, "inference": 1.10},
}


def compiled(builder, size, policy):
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = builder(size)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile="auto",
    )
    return model


def summary(seconds, images):
    seconds = np.asarray(seconds)
    return {
        "median_ms": round(1e3 * float(np.median(seconds)), 3),
        "p10_ms": round(1e3 * float(np.quantile(seconds, 0.1)), 3),
        "images_per_s": round(images / float(np.median(seconds)), 1),
    }


def time_pair(name, policy, tiny, samples, steps, warmup):
    size = SIZES[name]["tiny" if tiny else "full"]
    batch = size["batch"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *size["shape"])).astype("float32")
    y = rng.integers(0, size["classes"], size=(batch,)).astype("int32")
    models = {
        kind: compiled(builder, size, policy)
        for kind, builder in zip(("block", "plain"), PAIRS[name])
    }
    result = {
        "batch": batch,
        "input_shape": list(size["shape"]),
        "policy": policy,
        "jit_compile": {k: bool(m.jit_compile) for k, m in models.items()},
        "parameters": {k: int(m.count_params()) for k, m in models.items()},
    }
    for mode in ("train", "inference"):

        def step(model, mode=mode):
            for _ in range(steps):
                if mode == "train":
                    model.train_on_batch(x, y)
                else:
                    model.predict_on_batch(x)

        for _ in range(warmup):  # compiles, and lets the clocks settle
            for model in models.values():
                step(model)
        times = time_interleaved({k: (lambda m=m: step(m)) for k, m in models.items()}, samples)
        per_step = {k: [t / steps for t in v] for k, v in times.items()}
        entry = {k: summary(v, batch) for k, v in per_step.items()}
        entry["ratio_median"] = round(
            float(np.median(per_step["block"]) / np.median(per_step["plain"])), 4
        )
        entry["ratio_p10"] = round(
            float(np.quantile(per_step["block"], 0.1) / np.quantile(per_step["plain"], 0.1)), 4
        )
        entry["target"] = TARGETS[name][mode]
        result[mode] = entry
    return result


def markdown_table(results):
    lines = [
        "| pair | precision | mode | plain ms | block ms | ratio (median) | ratio (p10) "
        "| target | block images/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        for mode in ("train", "inference"):
            e = run[mode]
            lines.append(
                f"| {run['pair']} | {run['policy']} | {mode} | {e['plain']['median_ms']} "
                f"| {e['block']['median_ms']} | {e['ratio_median']:.3f} "
                f"| {e['ratio_p10']:.3f} | <= {e['target']} "
                f"| {e['block']['images_per_s']} |"
            )
    return "\n".join(lines)


def default_output(info):
    device = re.sub(r"[^a-z0-9]+", "_", (info["gpu"] or "cpu").lower()).strip("_")
    return RESULTS / f"gpu_{device}_{info['backend']}.json"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["float32", "mixed_bfloat16"],
        choices=["float32", "mixed_bfloat16", "mixed_float16"],
    )
    parser.add_argument("--samples", type=int, default=30, help="timed samples per model")
    parser.add_argument("--steps", type=int, default=5, help="calls in a row per sample")
    parser.add_argument("--warmup", type=int, default=3, help="untimed samples first")
    parser.add_argument("--tiny", action="store_true", help="CPU-sized smoke run")
    parser.add_argument("--output", type=Path, help="default: results/gpu_<device>_<backend>.json")
    args = parser.parse_args(argv)

    info = machine()
    if info["gpu"] is None and not args.tiny:
        parser.error(
            f"no GPU visible to Keras' {info['backend']} backend; pass --tiny for a CPU smoke run"
        )
    results = {
        "machine": info,
        "tiny": args.tiny,
        "samples": args.samples,
        "steps_per_sample": args.steps,
        "runs": [],
    }
    for name in args.pairs:
        for policy in args.policies:
            print(f"{name} {policy} ...", flush=True)
            run = time_pair(name, policy, args.tiny, args.samples, args.steps, args.warmup)
            results["runs"].append({"pair": name, **run})
    output = args.output or default_output(info)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{info['gpu'] or info['cpu']}, Keras {info['versions']['keras']} on {info['backend']}")
    print(markdown_table(results))
    print(f"written to {output}")


if __name__ == "__main__":
    main()
