"""The Fashion-MNIST studies: run (or resume) a grid, then one record per run.

    python -m benchmarks.fashion_mnist_study cc            # the CC paper's Fig. 4 grid
    python -m benchmarks.fashion_mnist_study sr            # the SR paper's CIFAR rows
    python -m benchmarks.fashion_mnist_study cc --collect  # records of the runs so far
    python -m benchmarks.fashion_mnist_study cc --quick    # the grid checked, 1 step per row

Each cell is a run directory (`<runs>/fmnist-cc/<split>_<block>_w<width>/seed_<s>`), so
an interrupted study resumes and a finished run is never trained again; two processes
of one study share its cells (each with `TF_NUM_INTRAOP_THREADS=1` on a 2-core machine).
Writes `benchmarks/results/fashion_mnist_<study>.json`: a header naming the machine
and versions, one record per finished run, and per cell the mean, sd and 95 % interval
over seeds and the difference to the plain net paired by seed.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.interleaved_timing import machine
from keras_memblocks.training.reproduction import reproduce
from keras_memblocks.utils.files import atomic_write_json

HERE = Path(__file__).parent
GRIDS = {"cc": "fmnist-cc", "sr": "fmnist-sr"}
BASELINE = {"cc": "standard", "sr": "plain"}


def _record(study, cell, results):
    config = results["config"]
    args = config["model_args"]
    blocks = args.get("blocks")
    if study == "cc":
        split, rest = cell.split("_", 1)
        block, width = rest.rsplit("_w", 1)
        width = int(width)
    else:
        split, block, width = "normal", cell, args.get("width")
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


def summarise(study, records):
    """Per cell: accuracy over seeds and the paired difference to the plain net."""
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
        base = by_cell.get(base_cell, {})
        paired = sorted(set(runs) & set(base))
        if first["block"] != BASELINE[study] and paired:
            differences = [
                100 * (runs[s]["test_accuracy"] - base[s]["test_accuracy"]) for s in paired
            ]
            mean, sd, low, high = interval(differences)
            row["minus_plain"] = {"seeds": paired, "mean": mean, "sd": sd, "low": low, "high": high}
            row["minus_plain"]["verdict"] = (
                "too few seeds"
                if low is None
                else "no measurable difference"
                if low <= 0 <= high
                else ("better" if low > 0 else "worse")
            )
        cells.append(row)
    return cells


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
    args = parser.parse_args(argv)
    if args.quick:
        rows = reproduce(GRIDS[args.study], args.runs, seeds=args.seeds[:1], quick=True, verbose=0)
        print(f"{len(rows)} rows trained one step; the grid's models all build")
        return 0
    if not args.collect:
        reproduce(GRIDS[args.study], args.runs, seeds=args.seeds)
    records = collect(args.study, args.runs)
    output = Path(args.output or HERE / "results" / f"fashion_mnist_{args.study}.json")
    atomic_write_json(
        output,
        {
            "study": GRIDS[args.study],
            "machine": machine(),
            "command": f"python -m benchmarks.fashion_mnist_study {args.study}",
            "cells": summarise(args.study, records),
            "runs": records,
        },
    )
    print(f"{len(records)} runs in {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
