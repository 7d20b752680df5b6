"""The papers' analyses of what the blocks learned, on the Fashion-MNIST studies' models.

    python -m benchmarks.fashion_mnist_analyses --runs runs/studies
    python -m benchmarks.fashion_mnist_analyses --quick    # untrained models, 256 images

Reads the models `python -m benchmarks.fashion_mnist_study cc|sr` trained (each cell's
`best.keras`) and runs on the 10,000 test images:

- CC (the CC paper's Fig. 5): tilt and magnitude of the bilinear maps per layer, and the
  class x class matrix of coefficient distributions that differ (Mann-Whitney, p < 0.01),
  for the reduced CC net at the study's largest width, seed 0;
- SR (the SR paper's Fig. 2 / 5 and its removal ablation): the memory weights per class
  of the SR net, seed 0, and, for every SR model of the study (`sr`, `d2d_sr`, `se_sr`,
  every seed), test accuracy with and without its SR block at inference, and how large
  the block's addition is beside what it is added to (mean |output - input| over mean
  |input|).

Writes the figures to `docs/figures/fashion_mnist_*.png` and the numbers to
`benchmarks/results/fashion_mnist_analyses.json` (with the machine), so the analysis guide
shows what the blocks learned on real images rather than on the embedded digits.
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.interleaved_timing import machine  # noqa: E402
from keras_memblocks.utils.files import atomic_write_json  # noqa: E402

HERE = Path(__file__).parent
FIGURES = HERE.parent / "docs" / "figures"
CC_CELL = "normal_reduced_w32"
SR_CELLS = ("sr", "d2d_sr", "se_sr")


def _save(figure, path):
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    print(f"figure: {path}")


def _test_images(channels, quick):
    """Fashion-MNIST's test split (or, with `quick`, 256 generated images)."""
    if quick:
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 1, (256, 28, 28, channels)).astype("float32")
        return images, np.arange(256, dtype="int32") % 10
    from keras_memblocks.data import load_fashion_mnist

    _, (x_test, y_test) = load_fashion_mnist(channels=channels)
    return x_test, y_test


def _study_model(runs, grid, cell, seed, quick):
    """The `best.keras` of a study's cell, with its test accuracy; with `quick`,
    the cell's model as the grid builds it, untrained."""
    if quick:
        from keras_memblocks.training import build_model
        from keras_memblocks.training.reproduction import grid as grid_rows

        config = next(config for label, config, _ in grid_rows(grid) if label == cell)
        return build_model(config), None
    import json

    import keras

    import keras_memblocks  # noqa: F401 (registers the layers the file holds)

    folder = Path(runs) / grid / cell / f"seed_{seed}"
    results = json.loads((folder / "results.json").read_text())
    return keras.saving.load_model(folder / "best.keras"), results["test"]["accuracy"]


def cc_analyses(runs, quick, figures):
    from keras_memblocks import analysis
    from keras_memblocks.data.fashion_mnist import CLASS_NAMES

    model, accuracy = _study_model(runs, "fmnist-cc", CC_CELL, 0, quick)
    images, labels = _test_images(1, quick)
    start = time.perf_counter()
    coefficients = analysis.cc_coefficients(model, images, labels, batch_size=256)
    measures = analysis.tilt_and_magnitude(coefficients)
    differences = analysis.class_difference_matrix(coefficients, alpha=0.01, seed=0)
    _save(analysis.plot_tilt_and_magnitude(measures), figures / "fashion_mnist_cc_tilt.png")
    _save(
        analysis.plot_class_difference_matrix(differences, class_names=list(CLASS_NAMES)),
        figures / "fashion_mnist_cc_class_differences.png",
    )
    off_diagonal = differences.counts[~np.eye(len(differences.classes), dtype=bool)]
    return {
        "model": f"fmnist-cc/{CC_CELL}/seed_0",
        "test_accuracy": accuracy,
        "images": len(images),
        "layers": measures.layer_names,
        "median_tilt_w": [float(np.median(v)) for v in measures.tilt_w],
        "median_tilt_h": [float(np.median(v)) for v in measures.tilt_h],
        "median_magnitude_w": [float(np.median(v)) for v in measures.magnitude_w],
        "median_magnitude_h": [float(np.median(v)) for v in measures.magnitude_h],
        "class_differences": differences.counts.tolist(),
        "distributions_per_pair": differences.num_distributions,
        "share_differing_between_classes": float(
            off_diagonal.mean() / differences.num_distributions
        ),
        "share_differing_within_a_class": float(
            np.diag(differences.counts).mean() / differences.num_distributions
        ),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _seeds_of(runs, cell):
    folder = Path(runs) / "fmnist-sr" / cell
    return sorted(
        int(path.parent.name.removeprefix("seed_")) for path in folder.glob("seed_*/results.json")
    )


def sr_analyses(runs, quick, figures):
    from keras_memblocks import analysis
    from keras_memblocks.data.fashion_mnist import CLASS_NAMES

    images, labels = _test_images(3, quick)
    start = time.perf_counter()
    model, accuracy = _study_model(runs, "fmnist-sr", "sr", 0, quick)
    usage = analysis.memory_usage(model, images, labels, batch_size=256)
    _save(
        analysis.plot_memory_usage(usage, class_names=list(CLASS_NAMES)),
        figures / "fashion_mnist_sr_memory_usage.png",
    )
    ablations = []
    for cell in SR_CELLS:
        for seed in [0] if quick else _seeds_of(runs, cell):
            model, _ = _study_model(runs, "fmnist-sr", cell, seed, quick)
            ablation = analysis.removal_ablation(model, images, labels, batch_size=256)
            ablations.append(
                {
                    "model": f"fmnist-sr/{cell}/seed_{seed}",
                    "accuracy_with": ablation.accuracy_with,
                    "accuracy_without": ablation.accuracy_without,
                    "difference": ablation.difference,
                    "relative_addition": _relative_addition(model, images),
                }
            )
            print(
                f"{cell} seed {seed}: {100 * ablation.accuracy_with:.2f} % with SR, "
                f"{100 * ablation.accuracy_without:.2f} % without; the block adds "
                f"{100 * ablations[-1]['relative_addition']:.1f} % of its input's mean magnitude"
            )
    _save(_plot_ablations(ablations), figures / "fashion_mnist_sr_removal.png")
    dominant = usage.mean.argmax(axis=1)
    return {
        "model": "fmnist-sr/sr/seed_0",
        "test_accuracy": accuracy,
        "images": len(images),
        "memory_usage_mean": usage.mean.tolist(),
        "most_used_memory_per_class": [int(m) + 1 for m in dominant],
        "distinct_most_used_memories": int(len(set(dominant.tolist()))),
        "removal": ablations,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _relative_addition(model, images):
    """Mean |SR output - input| over mean |input| of the model's SR block: the size
    of what the block adds beside the features it adds it to."""
    from keras_memblocks.analysis import feature_taps
    from keras_memblocks.layers import SqueezeAndRemember2D

    (layer,) = feature_taps.find_blocks(model, SqueezeAndRemember2D)
    output = layer.output[0] if isinstance(layer.output, (list, tuple)) else layer.output
    before, after = feature_taps.tap(model, [layer.input, output], images, batch_size=256)
    return float(np.abs(after - before).mean() / np.abs(before).mean())


def _plot_ablations(ablations):
    """Test accuracy with and without the SR block, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    cells = list(dict.fromkeys(a["model"].split("/")[1] for a in ablations))
    for index, cell in enumerate(cells):
        rows = [a for a in ablations if a["model"].split("/")[1] == cell]
        for row in rows:
            axis.plot(
                [0, 1],
                [100 * row["accuracy_with"], 100 * row["accuracy_without"]],
                marker="o",
                color=f"C{index}",
                label=cell if row is rows[0] else None,
            )
    axis.set_xticks([0, 1], ["with the SR block", "SR block removed"])
    axis.set_xlim(-0.3, 1.3)
    axis.set_ylabel("test accuracy, %")
    axis.set_title("Removal ablation: each line one trained model (seed)", fontsize=10)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fashion_mnist_analyses", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", default="runs/studies", help="the studies' run directories")
    parser.add_argument("--quick", action="store_true", help="untrained models, 256 images")
    parser.add_argument("--only", choices=("cc", "sr"), help="one study's analyses")
    parser.add_argument("--output", help="default: benchmarks/results/fashion_mnist_analyses.json")
    parser.add_argument("--figures", help=f"default: {FIGURES}")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    figures = Path(args.figures or FIGURES)
    output = Path(args.output or HERE / "results" / "fashion_mnist_analyses.json")
    record = {
        "machine": machine(),
        "command": "python -m benchmarks.fashion_mnist_analyses"
        + (" --quick" if args.quick else ""),
    }
    if output.exists() and not args.quick:  # one study analysed now, the other kept
        import json

        record = {**json.loads(output.read_text()), **record}
    if args.only in (None, "cc"):
        record["cc"] = cc_analyses(args.runs, args.quick, figures)
    if args.only in (None, "sr"):
        record["sr"] = sr_analyses(args.runs, args.quick, figures)
    atomic_write_json(output, record)
    print(f"numbers: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
