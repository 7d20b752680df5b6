"""Is the CIFAR input pipeline ever the bottleneck?

Images/s of `keras_memblocks.data.load("cifar100", ..., training=True)` (pad-4
crop, flip, normalise; the real code path on generated CIFAR-shaped examples,
timed after the first epoch has filled the cache) against the images/s the
CIFAR-100 VGG-like train step consumes (width 32, reduced CC blocks, batch
128, graph mode). Target: the pipeline at least 3x faster.

    python -m benchmarks.input_pipeline

Writes benchmarks/results/input_pipeline.json.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_memblocks.data import load  # noqa: E402
from keras_memblocks.data import stand_in_data  # noqa: E402
from keras_memblocks.models import vgg_like  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "input_pipeline.json"


def pipeline_images_per_second(num_examples, batch_size, epochs):
    with stand_in_data(num_examples=num_examples):
        dataset = load("cifar100", "train", batch_size=batch_size, training=True, seed=0)
        for _ in dataset:  # first epoch: generate and cache
            pass
        rates = []
        for _ in range(epochs):
            start, images = time.perf_counter(), 0
            for batch, _ in dataset:
                images += int(batch.shape[0])
            rates.append(images / (time.perf_counter() - start))
    return float(np.median(rates))


def train_images_per_second(batch_size, steps, width):
    model = vgg_like(
        "cifar100", width=width, blocks={"block": "cc", "after": "conv", "variant": "reduced"}
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 100, batch_size)
    for _ in range(3):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return batch_size / float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    pipeline = pipeline_images_per_second(args.examples, args.batch_size, args.epochs)
    training = train_images_per_second(args.batch_size, args.steps, args.width)
    results = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "versions": {"keras": keras.__version__},
        "pipeline_images_per_second": round(pipeline, 1),
        "train_step_images_per_second": round(training, 1),
        "ratio": round(pipeline / training, 2),
        "target_ratio": 3.0,
        "settings": vars(args) | {"output": str(args.output)},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"pipeline {pipeline:,.0f} images/s, train step {training:,.0f} images/s: "
        f"ratio {pipeline / training:.1f}x (target >= 3x)"
    )


if __name__ == "__main__":
    main()
