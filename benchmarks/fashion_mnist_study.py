"""The Fashion-MNIST studies: run (or resume) a grid, then one record per run.

    python -m benchmarks.fashion_mnist_study cc            # the CC paper's Fig. 4 grid
    python -m benchmarks.fashion_mnist_study sr            # the SR paper's CIFAR rows
    python -m benchmarks.fashion_mnist_study cc --collect  # records of the runs so far
    python -m benchmarks.fashion_mnist_study cc --collect --table \
        --figure docs/figures/fashion_mnist_cc.png \
        --paired-figure docs/figures/fashion_mnist_cc_paired.png  # plots and the page's table
    python -m benchmarks.fashion_mnist_study sr --collect --step-times  # + train step vs plain
    python -m benchmarks.fashion_mnist_study cc --quick    # the grid checked, 1 step per row

Each cell is a run directory (`<runs>/fmnist-cc/<split>_<block>_w<width>/seed_<s>`), so
an interrupted study resumes and a finished run is never trained again; two processes
of one study share its cells (each with `TF_NUM_INTRAOP_THREADS=1` on a 2-core machine).
Writes `benchmarks/results/fashion_mnist_<study>.json`: a header naming the machine
and versions, one record per finished run, and per cell the mean, sd and 95 % interval
over seeds and the difference to the plain net paired by seed. With `--step-times`, each
cell's train step against the plain net's of the same width, timed side by side (kept in
the file until measured again: the runs' own step times come from runs that shared the
machine with other work, so they are not compared).
"""

import argparse
import functools
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.interleaved_timing import machine
from benchmarks.interleaved_timing import time_interleaved
from keras_memblocks.training.reproduction import reproduce
from keras_memblocks.utils.files import atomic_write_json

HERE = Path(__file__).parent
GRIDS = {"cc": "fmnist-cc", "sr": "fmnist-sr"}
BASELINE = {"cc": "standard", "sr": "plain"}
# The SR study's rows with the block -> the same net without it.
WITHOUT_SR = {"sr": "plain", "d2d_sr": "d2d", "se_sr": "se"}
BLOCK_ORDER = {
    "cc": ("standard", "se", "input_independent", "scalar", "reduced"),
    "sr": ("plain", "d2d", "sr", "d2d_sr", "se", "se_sr"),
}


def _cell_parts(study, cell):
    """`(split, block, width)` of a cell's label: the CC study's name all three
    (`normal_reduced_w4`), the SR study's only the block (width: None)."""
    if study == "cc":
        split, rest = cell.split("_", 1)
        block, width = rest.rsplit("_w", 1)
        return split, block, int(width)
    return "normal", cell, None


def _record(study, cell, results):
    config = results["config"]
    args = config["model_args"]
    blocks = args.get("blocks")
    split, block, width = _cell_parts(study, cell)
    width = args.get("width") if width is None else width
    variant = None
    for entry in blocks if isinstance(blocks, list) else [blocks]:
        if entry and entry.get("block") == "cc":
            variant = entry.get("variant", "reduced")
    return {
        "cell": cell,
        "block": block,
        "variant": variant,
        "width": width,
        "split": split,
        "seed": results["seed"],
        "epochs": results["epochs_completed"],
        "parameters": results["parameters"],
        "test_accuracy": results["test"]["accuracy"],
        "median_step_ms": results.get("median_step_ms"),
    }


def interval(values, level=0.95):
    """`(mean, sd, low, high)`: the t interval of the mean (None where n < 2)."""
    values = np.asarray(values, dtype="float64")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None, None, None
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean, sd, mean - half, mean + half


def summarise(study, records, train_steps=None):
    """Per cell: accuracy over seeds, the paired difference to the plain net, and
    `train_steps[cell]` (`step_times`) where given."""
    by_cell = {}
    for record in records:
        by_cell.setdefault(record["cell"], {})[record["seed"]] = record
    cells = []
    for cell, runs in sorted(by_cell.items()):
        first = next(iter(runs.values()))
        base_cell = cell.replace(first["block"], BASELINE[study], 1)
        accuracy = [100 * r["test_accuracy"] for r in runs.values()]
        row = {
            key: first[key] for key in ("cell", "block", "variant", "width", "split", "parameters")
        }
        row["seeds"] = sorted(runs)
        row["accuracy"] = dict(zip(("mean", "sd", "low", "high"), interval(accuracy)))
        if first["block"] != BASELINE[study]:
            paired = _paired(runs, by_cell.get(base_cell, {}))
            if paired:
                row["minus_plain"] = paired
        if study == "sr" and cell in WITHOUT_SR:
            # The SR paper's own comparison: the same net without the block (+D2D -> +D2D+SR).
            paired = _paired(runs, by_cell.get(WITHOUT_SR[cell], {}))
            if paired:
                row["minus_without_sr"] = {"without": WITHOUT_SR[cell], **paired}
        if train_steps and _timed_cell(study, cell) in train_steps:
            row["train_step"] = train_steps[_timed_cell(study, cell)]
        cells.append(row)
    return cells


def _paired(runs, base):
    """The paired difference (points) of `runs` minus `base` over their common seeds:
    mean, sd, 95 % interval and verdict; None without a common seed."""
    seeds = sorted(set(runs) & set(base))
    if not seeds:
        return None
    differences = [100 * (runs[s]["test_accuracy"] - base[s]["test_accuracy"]) for s in seeds]
    mean, sd, low, high = interval(differences)
    verdict = (
        "too few seeds"
        if low is None
        else "no measurable difference"
        if low <= 0 <= high
        else ("better" if low > 0 else "worse")
    )
    return {"seeds": seeds, "mean": mean, "sd": sd, "low": low, "high": high, "verdict": verdict}


def markdown_table(study, cells):
    """The Reproduction page's table: per cell, accuracy over seeds and the
    difference to the plain net paired by seed, each with its 95 % interval (the
    SR study also minus the same net without SR)."""

    def span(entry):
        if entry.get("low") is None:
            return f"{entry['mean']:.2f} (1 seed)" if "mean" in entry else "–"
        return f"{entry['mean']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}]"

    sr = study == "sr"  # and the SR paper's comparison: minus the same net without SR
    lines = [
        "| split | width | block | parameters | train step vs plain | seeds "
        "| test accuracy, % | minus plain, points | |"
        + (" minus the same net without SR, points | |" if sr else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if sr else ""),
    ]
    order = {name: i for i, name in enumerate(BLOCK_ORDER[study])}
    for row in sorted(
        cells, key=lambda r: (r["split"], r["width"] or 0, order.get(r["block"], 99))
    ):
        minus = row.get("minus_plain", {})
        step = row.get("train_step")
        step = f"{step['ratio_median']:.2f}x" if step else "–"
        lines.append(
            f"| {row['split']} | {row['width']} | {row['block']} | {row['parameters']:,} | "
            f"{step} | {len(row['seeds'])} | {span(row['accuracy'])} | "
            f"{span(minus) if minus else '–'} | {minus.get('verdict', '')} |"
        )
        if sr:
            own = row.get("minus_without_sr", {})
            lines[-1] += f" {span(own) if own else '–'} | {own.get('verdict', '')} |"
    return "\n".join(lines)


def figure(study, cells, path):
    """Test accuracy against the number of weights, one line per block, mean
    with the 95 % interval over seeds (a point alone: one seed so far); the
    CC study's two splits side by side, as the CC paper's Fig. 4 draws them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = sorted({row["split"] for row in cells})
    fig, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 4.2), squeeze=False)
    for axis, split in zip(axes[0], splits):
        for block in BLOCK_ORDER[study]:
            rows = sorted(
                (r for r in cells if r["split"] == split and r["block"] == block),
                key=lambda r: r["parameters"],
            )
            if not rows:
                continue
            x = [r["parameters"] for r in rows]
            y = [r["accuracy"]["mean"] for r in rows]
            low = [
                r["accuracy"]["low"] if r["accuracy"]["low"] is not None else m
                for r, m in zip(rows, y)
            ]
            high = [
                r["accuracy"]["high"] if r["accuracy"]["high"] is not None else m
                for r, m in zip(rows, y)
            ]
            errors = [np.subtract(y, low), np.subtract(high, y)]
            axis.errorbar(x, y, yerr=errors, marker="o", capsize=3, label=block)
        axis.set_xscale("log")
        axis.set_xlabel("number of weights")
        axis.set_ylabel("test accuracy, %")
        title = {"normal": "60k train / 10k test", "swapped": "10k train / 60k test"}.get(
            split, split
        )
        axis.set_title(f"Fashion-MNIST, {title}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("mean and 95 % interval over seeds (a bare point: one seed so far)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def paired_figure(study, cells, path):
    """Each block minus the plain net, paired by seed: the mean difference and
    its 95 % interval per cell (a bare point: one pair so far), the zero line
    drawn; the CC study one panel per split, its widths along the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in cells if "minus_plain" in r]
    splits = sorted({r["split"] for r in rows}) or ["normal"]
    blocks = [b for b in BLOCK_ORDER[study] if b != BASELINE[study]]
    fig, axes = plt.subplots(
        1, len(splits), figsize=(5.5 * len(splits), 3.8), squeeze=False, sharey=True
    )
    for axis, split in zip(axes[0], splits):
        widths = sorted({r["width"] for r in rows if r["split"] == split})
        for index, block in enumerate(blocks):
            offset = (index - (len(blocks) - 1) / 2) * 0.12
            points = [
                (widths.index(r["width"]) + offset, r["minus_plain"])
                for r in rows
                if r["split"] == split and r["block"] == block
            ]
            if not points:
                continue
            x = [p[0] for p in points]
            y = [p[1]["mean"] for p in points]
            low = [p[1]["low"] if p[1]["low"] is not None else p[1]["mean"] for p in points]
            high = [p[1]["high"] if p[1]["high"] is not None else p[1]["mean"] for p in points]
            errors = [np.subtract(y, low), np.subtract(high, y)]
            axis.errorbar(x, y, yerr=errors, fmt="o", capsize=3, label=block, color=f"C{index}")
        axis.axhline(0, color="black", linewidth=0.8)
        if study == "cc":
            axis.set_xticks(range(len(widths)), [f"width {w}" for w in widths])
            axis.set_title(
                {"normal": "60k train / 10k test", "swapped": "10k train / 60k test"}.get(
                    split, split
                )
            )
        else:
            axis.set_xticks([])
            axis.set_title(f"CIFAR ResNet-18, width {widths[0] if widths else ''}")
        axis.set_ylabel(f"minus {BASELINE[study]}, points")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(
        "paired by seed: mean difference and 95 % interval (spanning 0: no measurable difference)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _timed_cell(study, cell):
    """The cell whose model `cell` trains: the CC study's swapped split trains the
    normal split's models (only the data differ), so they are timed once."""
    return cell.replace("swapped_", "normal_", 1) if study == "cc" else cell


def step_times(study, rounds=20, quick=False):
    """`{cell: {"p20_ms", "median_ms", "ratio_p20", "ratio_median"}}`: each cell's
    train step against the plain net's of the same width.

    The models of one width are timed side by side: every one once per round, in
    turn (`time_interleaved`), so that machine noise hits them alike; each
    `train_on_batch` at the study's batch size on random images after two warm-up
    steps, compiled as the study trains it; 20th percentile and median over the
    rounds. `quick`: batch 2 and 2 rounds, to check the code, not to measure.
    """
    from keras_memblocks.training.plan import compiled_model
    from keras_memblocks.training.plan import resolve
    from keras_memblocks.training.reproduction import grid

    groups = {}
    for label, config, _ in grid(GRIDS[study]):
        if _timed_cell(study, label) == label:
            run = resolve(config)
            groups.setdefault(run.model_args.get("width"), {})[label] = run
    rng = np.random.default_rng(0)
    measured = {}
    for width, runs in groups.items():
        calls = {}
        for label, run in runs.items():
            batch = 2 if quick else run.config.batch_size
            model = compiled_model(run, steps_per_epoch=100)
            images = rng.random((batch, *run.model_args["input_shape"]), dtype="float32")
            labels = rng.integers(0, run.model_args["num_classes"], batch)
            for _ in range(2):
                model.train_on_batch(images, labels)
            calls[label] = functools.partial(model.train_on_batch, images, labels)
        times = time_interleaved(calls, 2 if quick else rounds)
        quantiles = {
            label: (1000 * np.quantile(t, 0.2), 1000 * np.median(t)) for label, t in times.items()
        }
        base = next(label for label in runs if _cell_parts(study, label)[1] == BASELINE[study])
        for label, (p20, median) in quantiles.items():
            measured[label] = {
                "p20_ms": round(float(p20), 3),
                "median_ms": round(float(median), 3),
                "ratio_p20": round(float(p20 / quantiles[base][0]), 3),
                "ratio_median": round(float(median / quantiles[base][1]), 3),
            }
        print(
            f"width {width}: "
            + ", ".join(
                f"{label} {entry['ratio_median']:.2f}x"
                for label, entry in measured.items()
                if label in runs
            ),
            flush=True,
        )
    return measured


def collect(study, runs_dir):
    grid_dir = Path(runs_dir) / GRIDS[study]
    records = []
    for results_path in sorted(grid_dir.glob("*/seed_*/results.json")):
        results = json.loads(results_path.read_text())
        if results.get("status") == "diverged":
            continue
        records.append(_record(study, results_path.parent.parent.name, results))
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fashion_mnist_study", description=__doc__.splitlines()[0]
    )
    parser.add_argument("study", choices=sorted(GRIDS))
    parser.add_argument("--runs", default="runs/studies", help="where the run directories go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--collect", action="store_true", help="only collect finished runs")
    parser.add_argument("--quick", action="store_true", help="check the grid: 1 step per row")
    parser.add_argument("--output", help="default: benchmarks/results/fashion_mnist_<study>.json")
    parser.add_argument(
        "--figure", help="also plot accuracy against weights (docs/figures/fashion_mnist_cc.png)"
    )
    parser.add_argument(
        "--paired-figure",
        help="also plot each block minus the plain net, paired by seed "
        "(docs/figures/fashion_mnist_<study>_paired.png)",
    )
    parser.add_argument(
        "--table", action="store_true", help="also print the Reproduction page's Markdown table"
    )
    parser.add_argument(
        "--step-times",
        action="store_true",
        help="also time each cell's train step against the plain net's, side by side",
    )
    parser.add_argument("--step-rounds", type=int, default=20, help="rounds of --step-times")
    args = parser.parse_args(argv)
    if args.step_rounds < 1:
        parser.error(f"--step-rounds must be at least 1, got {args.step_rounds}")
    if args.quick:
        rows = reproduce(GRIDS[args.study], args.runs, seeds=args.seeds[:1], quick=True, verbose=0)
        print(f"{len(rows)} rows trained one step; the grid's models all build")
        if args.step_times:
            print(f"train steps of {len(step_times(args.study, quick=True))} models timed")
        return 0
    if not args.collect:
        reproduce(GRIDS[args.study], args.runs, seeds=args.seeds)
    output = Path(args.output or HERE / "results" / f"fashion_mnist_{args.study}.json")
    train_step = _previous_train_step(output)
    if args.step_times:
        start = _busy_seconds()
        cells = step_times(args.study, rounds=args.step_rounds)
        train_step = {
            "method": f"train_on_batch at the study's batch size, the models of one width "
            f"interleaved, {args.step_rounds} rounds after 2 warm-up steps; ratios to the "
            f"plain net of the same width",
            "machine": machine(),
            # Unset: TensorFlow's default, every core; the studies train with 1.
            "TF_NUM_INTRAOP_THREADS": os.environ.get("TF_NUM_INTRAOP_THREADS"),
            "other_work_cores": _other_work_cores(start),
            "cells": cells,
        }
    records = collect(args.study, args.runs)
    cells = summarise(args.study, records, (train_step or {}).get("cells"))
    atomic_write_json(
        output,
        {
            "study": GRIDS[args.study],
            "machine": machine(),
            "command": f"python -m benchmarks.fashion_mnist_study {args.study}",
            "cells": cells,
            "runs": records,
            **({"train_step": train_step} if train_step else {}),
        },
    )
    print(f"{len(records)} runs in {output}")
    if args.figure:
        figure(args.study, cells, args.figure)
        print(f"figure: {args.figure}")
    if args.paired_figure:
        paired_figure(args.study, cells, args.paired_figure)
        print(f"figure: {args.paired_figure}")
    if args.table:
        print(markdown_table(args.study, cells))
    return 0


def _busy_seconds():
    """(wall, CPU seconds of the whole machine, CPU seconds of this process); the
    machine's from /proc/stat (None elsewhere than Linux)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
        # user, nice, system, idle, iowait, irq, softirq, steal (guest is in user)
        machine_busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        machine_busy = None
    own = os.times()
    return time.perf_counter(), machine_busy, own.user + own.system


def _other_work_cores(start):
    """How many cores other processes kept busy, on average, since `start`
    (`_busy_seconds()`): 0 on a quiet machine; the step times are only
    comparable between runs where it is near 0 (the ratios, being interleaved,
    suffer less)."""
    end = _busy_seconds()
    if start[1] is None or end[1] is None:
        return None
    others = (end[1] - start[1]) - (end[2] - start[2])
    return round(max(others, 0.0) / (end[0] - start[0]), 2)


def _previous_train_step(output):
    """The step times an earlier `--step-times` wrote into `output`, kept when
    the runs are collected again."""
    try:
        return json.loads(output.read_text()).get("train_step")
    except (OSError, ValueError, AttributeError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
