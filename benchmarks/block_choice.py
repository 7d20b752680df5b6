"""Which block, at what price: the Fashion-MNIST studies' accuracy beside the runtime cost.

    python -m benchmarks.block_choice            # the docs' full table
    python -m benchmarks.block_choice --short    # the README's
    python -m benchmarks.block_choice --write    # both, written between their markers

Reads three committed results files and computes nothing new:
`fashion_mnist_cc.json` and `fashion_mnist_sr.json` (`benchmarks.fashion_mnist_study`:
accuracy over seeds and each block minus the plain net, paired by seed, with 95 %
intervals) and `runtime_overhead.json` (`benchmarks.runtime_overhead`: time of the
VGG-like net c=32 with the block / without, interleaved, q10); the train step column
is the studies' own (`fashion_mnist_study --step-times`: the study's net with the block /
without, `train_on_batch` at its batch size, interleaved, median). Each block sits where
its paper puts it: CC and SE after every conv of the CC paper's MNIST net, SR once after
stage 3 of the CIFAR ResNet-18 (dropout2d costs nothing at inference: the SR + dropout2d
row shows SR's cost). The runtime benchmark has no scalar or input-independent CC and no
SE in residual blocks: "–". `tests/test_benchmarks.py` checks that the README's table
is this script's output, so its numbers are the files'.
"""

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
# Where each table lives, between `<!-- block-choice: FORM -->` and `<!-- /block-choice -->`.
PAGES = {"short": ROOT / "README.md", "full": ROOT / "docs" / "reproduction.md"}

# (label, study, cell block, runtime_overhead block or None, where)
ROWS = (
    ("SE", "cc", "se", "se", "after every conv"),
    ("CC reduced", "cc", "reduced", "cc_reduced", "after every conv"),
    ("CC scalar", "cc", "scalar", None, "after every conv"),
    ("CC input-independent", "cc", "input_independent", None, "after every conv"),
    ("SR (3, 10)", "sr", "sr", "sr", "once, after stage 3"),
    ("SR + dropout2d", "sr", "d2d_sr", "sr", "once, after stage 3"),
    ("SE + SR", "sr", "se_sr", None, "SE in every residual block, SR after stage 3"),
)
RUNTIMES = (
    ("tf_graph_inference", "TF infer"),
    ("tflite_float32", "TFLite fp32"),
    ("tflite_int8", "TFLite int8"),
    ("onnxruntime", "ONNX Runtime"),
)
CC_WIDTHS = (8, 32)
SR_WIDTH = 8


def _load(name):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _cell(study, block, width):
    results = _load(f"fashion_mnist_{study}.json")
    if results is None:
        return None
    for cell in results["cells"]:
        if cell["block"] == block and cell["width"] == width and cell["split"] == "normal":
            return cell
    return None


def _plain(study, width):
    return _cell(study, {"cc": "standard", "sr": "plain"}[study], width)


def _difference(cell):
    """`+0.31 [-0.12, +0.74] (3)`: mean and 95 % interval of the paired difference,
    in points, and the number of seeds; one seed: no interval."""
    if cell is None:
        return "not run yet"
    minus = cell.get("minus_plain")
    if not minus:
        return "no paired seed yet"
    seeds = len(minus["seeds"])
    if minus["low"] is None:
        return f"{minus['mean']:+.2f} (1 seed)"
    verdict = "" if minus["verdict"] != "no measurable difference" else " ~0"
    return f"{minus['mean']:+.2f} [{minus['low']:+.2f}, {minus['high']:+.2f}] ({seeds}){verdict}"


def _parameters(study, block, width):
    cell, plain = _cell(study, block, width), _plain(study, width)
    if cell is None or plain is None:
        return "–"
    return f"+{100 * (cell['parameters'] / plain['parameters'] - 1):.1f} %"


def _train_step(study, block, width):
    cell = _cell(study, block, width)
    step = cell and cell.get("train_step")
    return f"{step['ratio_median']:.2f}x" if step else "–"


def _cost(block, runtime):
    overhead = _load("runtime_overhead.json")
    if block is None or overhead is None:
        return "–"
    entry = overhead["ratios"]["vgg"].get(runtime, {}).get(block)
    return "–" if entry is None else f"{entry['ratio']:.2f}x"


def table(short=False):
    """The Markdown table (`short`: the README's columns)."""
    widths = CC_WIDTHS[-1:] if short else CC_WIDTHS
    header = ["block", "where"]
    header += [
        "accuracy minus plain, points [95 % interval] (seeds)"
        if short
        else f"minus plain, points: CC net width {w}, SR net"
        for w in widths
    ]
    header += [f"parameters (CC net width {widths[-1]}, SR net)", "train step (same nets)"]
    header += [name for _, name in RUNTIMES]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, study, block, cost_block, where in ROWS:
        accuracy = [
            _difference(_cell(study, block, width if study == "cc" else SR_WIDTH))
            for width in widths
        ]
        width = widths[-1] if study == "cc" else SR_WIDTH
        parameters = _parameters(study, block, width)
        step = _train_step(study, block, width)
        costs = [_cost(cost_block, runtime) for runtime, _ in RUNTIMES]
        lines.append("| " + " | ".join([label, where, *accuracy, parameters, step, *costs]) + " |")
    return "\n".join(lines)


def _marked(form):
    return re.compile(rf"(<!-- block-choice: {form} -->\n)(.*?)(\n<!-- /block-choice -->)", re.S)


def shown(form):
    """The table a page shows now, between its markers."""
    match = _marked(form).search(PAGES[form].read_text())
    if match is None:
        raise ValueError(f"{PAGES[form]} has no <!-- block-choice: {form} --> marker")
    return match.group(2)


def write():
    """Puts both tables between their pages' markers."""
    # Here, not at the top: printing a table needs no Keras (which the package imports).
    from keras_memblocks.utils.files import atomic_write

    for form, page in PAGES.items():
        shown(form)  # the markers exist
        text = _marked(form).sub(
            lambda m: m.group(1) + table(short=form == "short") + m.group(3), page.read_text()
        )
        atomic_write(page, text)
        print(f"updated {page}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.block_choice", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--short", action="store_true", help="the README's columns")
    parser.add_argument("--write", action="store_true", help="update the README and the docs")
    args = parser.parse_args(argv)
    if args.write:
        write()
    else:
        print(table(short=args.short))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
