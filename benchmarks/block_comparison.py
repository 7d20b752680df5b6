"""Which block should I use? The same network with each block, on the digits.

The digits recipe's network (the CC paper's VGG-like net, CIFAR-10 layout,
width 8, scikit-learn's handwritten digits at 32x32, AdamW, 15 epochs) with
no block and with each block after every conv: SE, CBAM, reduced CC, scalar
CC, input-independent CC, SR (P = 2, U = 8). For each:

- test accuracy on the 450 held-out digits, mean ± sd over the seeds;
- the parameters the blocks add;
- the train step against the plain net's, timed side by side
  (`train_on_batch` at the recipe's batch of 64, interleaved rounds, 20th
  percentile), graph mode;
- the exported float32 TFLite model's batch-1 latency against the plain
  net's (LiteRT with XNNPACK, one thread, interleaved rounds, median);
- the int8 TFLite model's top-1 agreement with Keras on the held-out digits.

Every model is trained through `train_seeds` (runs already finished in
`--work-dir` are read back, not trained again) and exported through
`export_model` (so every artifact passed its parity check).

    python -m benchmarks.block_comparison                       # ~10 min on 2 CPU cores
    python -m benchmarks.block_comparison --seeds 0 --epochs 1  # quick

Writes benchmarks/results/block_comparison.json and, with --figure, the
accuracy-against-cost figure.
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_memblocks  # noqa: E402
from benchmarks.interleaved_timing import machine  # noqa: E402
from benchmarks.interleaved_timing import time_interleaved  # noqa: E402
from keras_memblocks.data import load_digits  # noqa: E402
from keras_memblocks.export import ExportError  # noqa: E402
from keras_memblocks.export import export_model  # noqa: E402
from keras_memblocks.export import tflite_interpreter  # noqa: E402
from keras_memblocks.training import get_recipe  # noqa: E402
from keras_memblocks.training import train_seeds  # noqa: E402
from keras_memblocks.training.recipes import cc_after_every_conv  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "block_comparison.json"
FIGURE = Path(__file__).parent.parent / "notebooks" / "figures" / "block_comparison.png"
PLAIN = "none"
BLOCKS = {
    PLAIN: None,
    "SE": {"block": "se", "after": "conv"},
    "CBAM": {"block": "cbam", "after": "conv"},
    "CC reduced": cc_after_every_conv("reduced"),
    "CC scalar": cc_after_every_conv("scalar"),
    "CC input-independent": cc_after_every_conv("input_independent"),
    "SR (P=2, U=8)": {"block": "sr", "after": "conv", "num_memory_blocks": 2, "hidden_units": 8},
}


def block_config(blocks, epochs):
    """The digits recipe with `blocks` (None: the plain net)."""
    recipe = get_recipe("digits")
    args = {key: value for key, value in recipe.model_args.items() if key != "blocks"}
    if blocks is not None:
        args["blocks"] = blocks
    return recipe.replace(model_args=args, epochs=epochs)


def _slug(name):
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--blocks", nargs="+", default=list(BLOCKS), choices=list(BLOCKS))
    parser.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds")
    parser.add_argument("--work-dir", type=Path, help="keeps the runs (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--figure", type=Path, help=f"write the figure (e.g. {FIGURE})")
    args = parser.parse_args()
    names = [PLAIN] + [name for name in args.blocks if name != PLAIN]

    (x_train, _), (x_test, y_test) = load_digits(32)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="block_comparison_"))
    entries, models, interpreters = {}, {}, {}
    for name in names:
        print(f"[{name}] training {len(args.seeds)} seed(s), exporting seed {args.seeds[0]}")
        config = block_config(BLOCKS[name], args.epochs)
        summary = train_seeds(config, args.seeds, work / _slug(name), verbose=0)
        model = keras.saving.load_model(summary["model_paths"][0])
        export_dir = work / _slug(name) / "export"
        export = export_model(
            model, export_dir / "float", formats=("tflite",), parity_inputs=x_test, overwrite=True
        )
        entries[name] = {
            "accuracy_mean": round(summary["mean"], 2),
            "accuracy_sd": round(summary["sd"], 2),
            "accuracy_per_seed": summary["values"],
            "parameters": summary["runs"][0]["parameters"],
            "float_parity": export["parity"]["tflite"],
        }
        try:
            int8 = export_model(
                model,
                export_dir / "int8",
                formats=("tflite",),
                quantization="int8",
                representative_data=x_train[:128],
                parity_inputs=x_test,
                overwrite=True,
            )
            entries[name]["int8_top1_agreement"] = int8["parity"]["tflite"]["top1_agreement"]
        except ExportError as error:  # a finding, not a reason to stop the comparison
            entries[name]["int8_top1_agreement"] = None
            entries[name]["int8_error"] = str(error).splitlines()[0]
            print(f"[{name}] int8 export failed: {entries[name]['int8_error']}")
        models[name] = model
        interpreters[name] = tflite_interpreter(
            export_dir / "float" / "model.tflite", x_test[:1], 1
        )

    # Train steps and batch-1 latencies, every model in turn, in one process.
    batch, labels = x_train[:64], np.zeros(64, dtype="int32")
    steps = {}
    for name, model in models.items():
        # The same optimizer and loss for all (the recipe's AdamW), graph mode.
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-3),
            loss="sparse_categorical_crossentropy",
            jit_compile=False,
        )
        steps[(name, "train")] = lambda m=model: m.train_on_batch(batch, labels)
        steps[(name, "tflite")] = interpreters[name].invoke
    print(f"timing {len(models)} models, {args.rounds} interleaved rounds")
    time_interleaved(steps, 3)
    times = time_interleaved(steps, args.rounds)
    plain_parameters = entries[PLAIN]["parameters"]
    for name, entry in entries.items():
        train = np.quantile(times[(name, "train")], 0.2)
        tflite = np.median(times[(name, "tflite")])
        entry["added_parameters"] = entry["parameters"] - plain_parameters
        entry["train_step_p20_ms"] = round(1e3 * float(train), 3)
        entry["train_step_ratio"] = round(
            float(train / np.quantile(times[(PLAIN, "train")], 0.2)), 3
        )
        entry["tflite_batch1_median_ms"] = round(1e3 * float(tflite), 4)
        entry["tflite_latency_ratio"] = round(
            float(tflite / np.median(times[(PLAIN, "tflite")])), 3
        )

    results = {
        "machine": machine(),
        "keras_memblocks": keras_memblocks.__version__,
        "network": "vgg_like, cifar10 layout, width 8, blocks after every conv",
        "data": "scikit-learn digits at 32x32: 1347 train (10 % for model selection), 450 test",
        "seeds": args.seeds,
        "epochs": args.epochs,
        "blocks": entries,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown_table(results))
    print(f"wrote {args.output}")
    if args.figure:
        write_figure(results, args.figure)
        print(f"wrote {args.figure}")


def markdown_table(results):
    lines = [
        f"| block | test accuracy (mean ± sd, {len(results['seeds'])} seeds) | added parameters "
        "| train step (x plain) | TFLite batch 1 (x plain) | int8 top-1 agreement |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in results["blocks"].items():
        agreement = e["int8_top1_agreement"]
        int8 = "export fails" if agreement is None else f"{100 * agreement:.1f} %"
        lines.append(
            f"| {name} | {e['accuracy_mean']:.2f} ± {e['accuracy_sd']:.2f} % "
            f"| {e['added_parameters']:,} | {e['train_step_ratio']:.2f}x "
            f"| {e['tflite_latency_ratio']:.2f}x | {int8} |"
        )
    return "\n".join(lines)


def write_figure(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, key, label in [
        (axes[0], "train_step_ratio", "train step, x the plain net"),
        (axes[1], "tflite_latency_ratio", "TFLite batch-1 latency, x the plain net"),
    ]:
        for name, e in results["blocks"].items():
            axis.errorbar(e[key], e["accuracy_mean"], yerr=e["accuracy_sd"], fmt="o", capsize=3)
            axis.annotate(
                name,
                (e[key], e["accuracy_mean"]),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(f"test accuracy, % (mean ± sd, {len(results['seeds'])} seeds)")
    fig.suptitle(
        f"Blocks after every conv of the digits VGG-like net ({results['machine']['cpu']}, "
        f"{results['machine']['cpu_cores']} cores)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
