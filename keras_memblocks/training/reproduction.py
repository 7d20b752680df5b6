"""The papers' experiment grids: `memblocks reproduce TABLE`.

Each grid is the list of rows of a published table, as recipe overrides,
with the paper's number beside it. `quick=True` checks a whole grid without
the data: every row's config is validated and its model built, and the first
and last rows train one step on generated stand-in data.
"""

import json
from pathlib import Path

from keras_memblocks import registry
from keras_memblocks.data import stand_in_data
from keras_memblocks.training.capacity_curves import CAPACITY_VARIANTS
from keras_memblocks.training.capacity_curves import capacity_config
from keras_memblocks.training.plan import build_model
from keras_memblocks.training.recipes import cc_after_every_conv
from keras_memblocks.training.recipes import get_recipe
from keras_memblocks.training.recipes import sr_after
from keras_memblocks.training.run_directory import RunLockedError
from keras_memblocks.training.run_directory import check_ours
from keras_memblocks.training.seeds import train_seeds
from keras_memblocks.utils.files import MARK
from keras_memblocks.utils.files import atomic_write


def sr_table1():
    rows = []
    table = {  # depth: (base, +D, +D+SR, +D2D, +D2D+SR, +DB, +DB+SR, +SR), (M, P) per SR column
        18: (
            (
                "76.47±0.20",
                "77.09±0.26",
                "77.26±0.11",
                "77.59±0.24",
                "77.93±0.25",
                "78.01±0.20",
                "78.12±0.15",
                "76.74±0.33",
            ),
            ((3, 10), (4, 12), (3, 2), (4, 2)),
        ),
        34: (
            (
                "77.07±0.45",
                "77.60±0.49",
                "77.96±0.38",
                "78.71±0.28",
                "78.81±0.28",
                "78.68±0.22",
                "78.84±0.22",
                "77.22±0.30",
            ),
            ((4, 4), (3, 6), (3, 2), (3, 6)),
        ),
        50: (
            (
                "76.17±0.69",
                "77.47±0.40",
                "77.72±0.29",
                "78.58±0.58",
                "78.68±0.55",
                "78.34±0.56",
                "78.43±0.29",
                "77.22±0.74",
            ),
            ((4, 6), (3, 8), (4, 4), (3, 2)),
        ),
    }
    for depth, (paper, sr_settings) in table.items():
        columns = [
            (None, None),
            ("dropout", None),
            ("dropout", 0),
            ("dropout2d", None),
            ("dropout2d", 1),
            ("dropblock", None),
            ("dropblock", 2),
            (None, 3),
        ]
        for (regularizer, sr_index), value in zip(columns, paper):
            args = {"depth": depth, "num_classes": 100, "regularizer": regularizer}
            parts = (
                [{"dropout": "D", "dropout2d": "D2D", "dropblock": "DB"}[regularizer]]
                if regularizer
                else []
            )
            if sr_index is not None:
                module, memories = sr_settings[sr_index]
                args["blocks"] = sr_after(module, memories)
                parts.append("SR")
            label = f"R{depth}" + (" +" + "+".join(parts) if parts else "")
            if sr_index is not None:
                label += f" ({module},{memories})"
            rows.append((label, {"model": "cifar_resnet", "model_args": args}, value))
    for depth, base, with_sr, (module, memories) in [
        (16, "72.48±0.35", "72.87±0.27", (2, 8)),
        (19, "71.34±0.14", "71.42±0.27", (4, 10)),
    ]:
        rows.append((f"VGG{depth}", {"model": "cifar_vgg", "model_args": {"depth": depth}}, base))
        rows.append(
            (
                f"VGG{depth} +SR ({module},{memories})",
                {
                    "model": "cifar_vgg",
                    "model_args": {"depth": depth, "blocks": sr_after(module, memories)},
                },
                with_sr,
            )
        )
    return "sr-cifar100", rows


def sr_table2():
    rows = []
    for depth, attention, base, with_sr, (module, memories) in [
        (18, "cbam", "76.71±0.28", "76.96±0.24", (3, 6)),
        (18, "se", "76.96±0.24", "76.86±0.21", (3, 2)),
        (34, "cbam", "77.20±0.33", "77.73±0.21", (3, 6)),
        (34, "se", "77.73±0.22", "77.93±0.23", (4, 2)),
        (50, "cbam", "78.73±0.54", "79.06±0.29", (3, 6)),
        (50, "se", "78.30±0.30", "78.73±0.30", (4, 4)),
    ]:
        # SE / CBAM in every residual block, SR after module M.
        attention_blocks = [{"block": attention, "after": "residual"}]
        args = {"depth": depth, "num_classes": 100}
        name = f"R{depth} {attention.upper()}"
        rows.append(
            (
                name,
                {"model": "cifar_resnet", "model_args": {**args, "blocks": attention_blocks}},
                base,
            )
        )
        blocks = [*attention_blocks, sr_after(module, memories)]
        rows.append(
            (
                f"{name} +SR ({module},{memories})",
                {"model": "cifar_resnet", "model_args": {**args, "blocks": blocks}},
                with_sr,
            )
        )
    return "sr-cifar100", rows


def sr_table3():
    rows = []
    for label, regularizer, sr, paper in [
        ("R50", None, None, "76.87±0.15"),
        ("R50 +D", "dropout", None, "77.53±0.10"),
        ("R50 +D2D", "dropout2d", None, "77.27±0.12"),
        ("R50 +DB", "dropblock", None, "77.40±0.11"),
        ("R50 +D+SR (3,2)", "dropout", (3, 2, 16), "77.64±0.10"),
        ("R50 +D2D+SR (3,2)", "dropout2d", (3, 2, 16), "77.70±0.06"),
        ("R50 +D2D+SR (3,10)", "dropout2d", (3, 10, 16), "77.79±0.02"),
        ("R50 +D2D+SR (3,20)", "dropout2d", (3, 20, 32), "77.76±0.08"),
        ("R50 +DB+SR (3,8)", "dropblock", (3, 8, 16), "77.47±0.11"),
        ("R50 +SR (3,10)", None, (3, 10, 16), "76.90±0.07"),
    ]:
        args = {"regularizer": regularizer, "blocks": None if sr is None else sr_after(*sr)}
        rows.append((label, {"model": "resnet50", "model_args": args}, paper))
    return "sr-imagenet", rows


def sr_table4():
    rows = []
    for model, memories, base, with_sr in [
        ("fcn", 3, "77.33±0.16", "77.53±0.23"),
        ("deeplabv3", 2, "79.76±0.32", "79.96±0.19"),
    ]:
        common = {"num_classes": 19, "input_shape": [512, 1024, 3], "auxiliary_head": True}
        rows.append((model, {"model": model, "model_args": common}, f"mIoU {base}"))
        rows.append(
            (
                f"{model} +SR (2,{memories})",
                {"model": model, "model_args": {**common, "blocks": sr_after(2, memories)}},
                f"mIoU {with_sr}",
            )
        )
    return "sr-cityscapes", rows


def sr_table5():
    rows = []
    for label, model, args, paper in [
        ("R18", "cifar_resnet", {"depth": 18}, "94.04"),
        (
            "R18 +D2D+SR (3,10)",
            "cifar_resnet",
            {"depth": 18, "regularizer": "dropout2d", "blocks": sr_after(3, 10)},
            "94.56",
        ),
        ("R34", "cifar_resnet", {"depth": 34}, "93.69"),
        (
            "R34 +DB+SR (4,2)",
            "cifar_resnet",
            {"depth": 34, "regularizer": "dropblock", "blocks": sr_after(4, 2)},
            "94.60",
        ),
        ("R50", "cifar_resnet", {"depth": 50}, "93.31"),
        (
            "R50 +DB+SR (3,2)",
            "cifar_resnet",
            {"depth": 50, "regularizer": "dropblock", "blocks": sr_after(3, 2)},
            "94.21",
        ),
        ("VGG16", "cifar_vgg", {"depth": 16}, "93.27"),
        ("VGG16 +SR (4,8)", "cifar_vgg", {"depth": 16, "blocks": sr_after(4, 8)}, "93.53"),
        ("VGG19", "cifar_vgg", {"depth": 19}, "93.21"),
        ("VGG19 +SR (2,12)", "cifar_vgg", {"depth": 19, "blocks": sr_after(2, 12)}, "93.39"),
    ]:
        rows.append((label, {"model": model, "model_args": {**args, "num_classes": 10}}, paper))
    return "sr-cifar10", rows


def cc_table3():
    base = {"dataset": "cifar100", "width": 32}
    rows = [("standard", {"model_args": base}, "–")]
    for label, variant, emp, paper in [
        ("CC bilinear (reduced)", "reduced", "bilinear", "62.5"),
        ("input-independent bilinear", "input_independent", "bilinear", "60.7"),
        ("input-independent 2D-Gaussian", "input_independent", "gaussian", "59.4"),
        ("input-independent 2D-Sine", "input_independent", "sine", "57.1"),
    ]:
        blocks = cc_after_every_conv(variant, emp=emp)
        rows.append((label, {"model_args": {**base, "blocks": blocks}}, paper))
    return "cc-cifar100", rows


def cc_fig4():
    rows = []
    for dataset in ("mnist", "cifar10", "cifar100"):
        for swapped in (False, True):
            for width in (1, 2, 4, 8, 16, 32, 48):
                for variant in CAPACITY_VARIANTS:
                    label = f"{dataset}{' swapped' if swapped else ''} c={width} {variant}"
                    rows.append((label, capacity_config(dataset, width, variant, swapped), "plot"))
    return None, rows


# Fashion-MNIST studies (not in the papers): cells named by what they hold, so
# that a grid grown later keeps every finished cell's directory.
STUDY_BLOCKS = ("standard", "input_independent", "scalar", "reduced", "se")
STUDY_WIDTHS = {"normal": (1, 4, 8, 32), "swapped": (4, 32)}


def _study_blocks(block):
    if block == "standard":
        return None
    if block == "se":
        return {"block": "se", "after": "conv"}
    return cc_after_every_conv(block)


def fmnist_cc():
    """The CC paper's Fig. 4 on Fashion-MNIST: its MNIST net at four widths, every
    block after every conv, and the swapped split (10k train, 60k test) at two."""
    rows = []
    for split, widths in STUDY_WIDTHS.items():
        for width in widths:
            for block in STUDY_BLOCKS:
                args = {"dataset": "mnist", "width": width, "blocks": _study_blocks(block)}
                overrides = {"model_args": args, "reverse_split": split == "swapped"}
                rows.append((f"{split}_{block}_w{width}", overrides, "plot"))
    return "cc-fashion-mnist", rows


def fmnist_sr():
    """The SR paper's CIFAR rows on Fashion-MNIST: plain, D2D, SR, D2D+SR, SE, SE+SR."""
    base = {"depth": 18, "width": 8, "num_classes": 10}
    sr = sr_after(3, 10)
    se = {"block": "se", "after": "residual"}
    rows = []
    for label, regularizer, blocks in [
        ("plain", None, None),
        ("d2d", "dropout2d", None),
        ("sr", None, sr),
        ("d2d_sr", "dropout2d", sr),
        ("se", None, [se]),
        ("se_sr", None, [se, sr]),
    ]:
        args = {**base, "regularizer": regularizer, "blocks": blocks}
        rows.append((label, {"model_args": args}, "Table I shape"))
    return "sr-fashion-mnist", rows


STUDIES = tuple(name for name, entry in registry.GRIDS.items() if entry.study)
"""The grids whose cells are named (`<output_dir>/<grid>/<row label>/seed_<s>`) and run
seed by seed: every cell gets its first seed before any gets a second."""


def grid(name):
    if name not in registry.GRIDS:
        raise ValueError(f"Unknown table {name!r}. Valid tables: {', '.join(registry.GRIDS)}")
    recipe, rows = registry.load(registry.GRIDS[name].rows)()
    # A row is a config, or overrides of the grid's recipe.
    return [
        (label, row if recipe is None else get_recipe(recipe).replace(**row), paper)
        for label, row, paper in rows
    ]


def _quick(config):
    """One step on stand-in data, at a size a CPU test can afford."""
    overrides = {
        "epochs": 1,
        "max_steps_per_epoch": 1,
        "max_eval_steps": 2,
        "batch_size": 2,
        "validation_fraction": 0.0,
    }
    args = dict(config.model_args)
    if registry.MODELS[config.model].task == "segmentation":
        args["input_shape"] = [32, 64, 3]
        overrides["crop_size"] = [32, 64]
    return config.replace(model_args=args, **overrides)


def _cell_dir(output_dir, name, index, label):
    return output_dir / name / (label if name in STUDIES else f"row_{index:03d}")


def _train_seed_by_seed(cells, seeds, verbose):
    """Trains every cell's first seed, then every cell's second, ...: an interrupted
    study has its seeds spread over every cell. A cell another process is training
    now (its run lock is held) is left to that process: two `memblocks reproduce`
    of one grid share its cells."""
    busy = []
    for seed in seeds:
        for label, config, run_dir in cells:
            try:
                train_seeds(config, [seed], run_dir, verbose=verbose)
            except RunLockedError:
                busy.append(f"{label} seed {seed}")
    return busy


def reproduce(name, output_dir, seeds=(0,), quick=False, data_dir=None, verbose=None):
    """Runs (or, with `quick`, checks) every row of a table's grid.

    Each row's seeds are run directories (`<output_dir>/<name>/<row>/seed_<s>`):
    a grid run again resumes an interrupted run and never retrains a
    finished one. Returns the rows as dicts; writes `<output_dir>/<name>.md`
    with our value beside the paper's.
    """
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds lists a seed twice: {list(seeds)}; give each seed once.")
    output_dir = Path(output_dir)
    table_path = output_dir / f"{name}.md"
    check_ours(table_path, legacy_starts=(f"# {name}",))  # before any work
    rows = grid(name)
    cells = []
    built = set()
    for index, (label, config, paper) in enumerate(rows):
        config = config.replace(data_dir=data_dir).validate()
        key = json.dumps([config.model, config.model_args], sort_keys=True, default=list)
        if quick and key not in built:  # every distinct model must build
            build_model(config)
            built.add(key)
        if quick and index not in (0, len(rows) - 1):
            continue
        cells.append((label, config, paper, _cell_dir(output_dir, name, index, label)))
    if name in STUDIES and not quick:
        busy = _train_seed_by_seed([(c[0], c[1], c[3]) for c in cells], seeds, verbose)
        if busy:
            raise RunLockedError(
                f"{len(busy)} runs are being trained by another process ({busy[0]}, ...); "
                "the same command, run again once it ends, reports them."
            )
    results = []
    for label, config, paper, run_dir in cells:
        if quick:
            with stand_in_data(num_examples=4):
                summary = train_seeds(_quick(config), seeds[:1], run_dir, verbose=0)
        else:
            summary = train_seeds(config, seeds, run_dir, verbose=verbose)
        results.append(
            {
                "row": label,
                "paper": paper,
                "ours": f"{summary['mean']:.2f} ± {summary['sd']:.2f}",
                "metric": summary["metric"],
                "seeds": list(seeds),
            }
        )
    lines = [
        f"# {name}" + (" (QUICK: generated data, numbers meaningless)" if quick else ""),
        f"<!-- {MARK}: reproduce -->",
        "",
        "| row | paper | ours |",
        "|---|---|---|",
    ]
    lines += [f"| {r['row']} | {r['paper']} | {r['ours']} |" for r in results]
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(table_path, "\n".join(lines) + "\n")
    return results
