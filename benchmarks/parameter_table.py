"""Parameters of every builder, with and without blocks, beside the papers'.

    python -m benchmarks.parameter_table

Counts are trainable parameters (what the papers, in PyTorch, count);
overheads are relative to the same network without the block. Writes
benchmarks/results/parameter_table.json and prints the README's table.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_memblocks.models import cifar_resnet  # noqa: E402
from keras_memblocks.models import cifar_vgg  # noqa: E402
from keras_memblocks.models import count_trainable_parameters as count  # noqa: E402
from keras_memblocks.models import deeplabv3  # noqa: E402
from keras_memblocks.models import fcn  # noqa: E402
from keras_memblocks.models import resnet50  # noqa: E402
from keras_memblocks.models import vgg_like  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "parameter_table.json"


def sr(module, memories, units=8):
    """The SR paper's placement (as `keras_memblocks.training.recipes.sr_after`)."""
    return {
        "blocks": {
            "block": "sr",
            "after": module,
            "num_memory_blocks": memories,
            "hidden_units": units,
        }
    }


def cc(variant):
    """The CC paper's placement: after every conv."""
    return {"blocks": {"block": "cc", "after": "conv", "variant": variant}}


def vgg_like_32(**kwargs):
    return vgg_like("cifar100", width=32, **kwargs)


# (builder call, builder, its block arguments, paper's figure, label)
ROWS = [
    (
        "vgg_like('cifar100', width=32)",
        vgg_like_32,
        cc("reduced"),
        "1.3M → 1.5M (CC Table 3)",
        "+ reduced CC after every conv",
    ),
    (
        "vgg_like('cifar100', width=32)",
        vgg_like_32,
        cc("scalar"),
        "–",
        "+ scalar CC after every conv",
    ),
    (
        "vgg_like('cifar100', width=32)",
        vgg_like_32,
        cc("input_independent"),
        "1.3M (CC Table 3)",
        "+ input-independent CC",
    ),
    ("vgg_like('cifar100', width=32)", vgg_like_32, cc("full"), "–", "+ full CC (ch_units 16, 4)"),
]
for depth, module, memories, paper in [
    (18, 3, 10, "1.47 %"),
    (18, 4, 12, "0.88 %"),
    (18, 3, 2, "0.30 %"),
    (18, 4, 2, "0.15 %"),
    (34, 4, 4, "0.16 %"),
    (34, 3, 6, "0.46 %"),
    (34, 3, 2, "0.16 %"),
    (50, 4, 6, "0.21 % *"),
    (50, 3, 8, "0.55 % *"),
    (50, 3, 2, "0.14 % *"),
]:
    ROWS.append(
        (
            f"cifar_resnet({depth})",
            lambda d=depth, **k: cifar_resnet(d, **k),
            sr(module, memories),
            paper,
            f"+ SR (M={module}, P={memories}, U=8)",
        )
    )
for depth, module, memories, paper in [(16, 2, 8, "0.42 %"), (19, 4, 10, "0.10 %")]:
    ROWS.append(
        (
            f"cifar_vgg({depth})",
            lambda d=depth, **k: cifar_vgg(d, **k),
            sr(module, memories),
            paper,
            f"+ SR (M={module}, P={memories}, U=8)",
        )
    )
for memories, units, paper in [(2, 16, "1.59 %"), (10, 16, "7.87 %"), (20, 32, "15.73 %")]:
    ROWS.append(
        (
            "resnet50()",
            lambda **k: resnet50(**k),
            sr(3, memories, units),
            paper,
            f"+ SR (M=3, P={memories}, U={units})",
        )
    )
for name, builder, memories, paper in [
    ("fcn", fcn, 3, "12.85 % †"),
    ("deeplabv3", deeplabv3, 2, "24.83 % †"),
]:
    ROWS.append(
        (
            f"{name}(19, input_shape=(512, 1024, 3))",
            lambda b=builder, **k: b(19, input_shape=(512, 1024, 3), **k),
            sr(2, memories),
            paper,
            f"+ SR (M=2, P={memories}, U=8)",
        )
    )


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    output = parser.parse_args().output
    rows = []
    for call, build, block_kwargs, paper, label in ROWS:
        base, with_block = count(build()), count(build(**block_kwargs))
        rows.append(
            dict(
                builder=call,
                blocks=label,
                parameters=base,
                with_blocks=with_block,
                overhead_percent=100 * (with_block - base) / base,
                paper=paper,
            )
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rows, indent=2) + "\n")
    print("| builder | blocks | parameters | with blocks | overhead | paper |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['builder']}` | {r['blocks']} | {r['parameters']:,} | {r['with_blocks']:,} "
            f"| +{r['overhead_percent']:.2f} % | {r['paper']} |"
        )


if __name__ == "__main__":
    main()
