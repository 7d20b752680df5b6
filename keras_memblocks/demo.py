"""The main job: both blocks trained and compared on the embedded digits.

    memblocks demo            # or: make demo

Trains, on scikit-learn's handwritten digits (32x32, RGB), the CC paper's
VGG-like net without and with reduced CC blocks, and a small CIFAR ResNet-18
without and with an SR block, then prints accuracy, parameters and step
time. A thin script over the public API (`keras_memblocks.training`).
"""

import json
from pathlib import Path

from keras_memblocks.training import get_recipe
from keras_memblocks.training import train

DEMO_MODELS = [
    ("VGG-like (CC paper), standard", "vgg_like", {"dataset": "cifar10", "width": 16}),
    ("VGG-like (CC paper), reduced CC after every conv", "vgg_like",
     {"dataset": "cifar10", "width": 16, "block": "cc", "variant": "reduced"}),
    ("ResNet-18 (width 16), no SR", "cifar_resnet", {"depth": 18, "num_classes": 10, "width": 16}),
    ("ResNet-18 (width 16), SR after module 3 (P=4, U=8)", "cifar_resnet",
     {"depth": 18, "num_classes": 10, "width": 16,
      "sr": {"module": 3, "num_memory_blocks": 4, "hidden_units": 8}}),
]


def run_demo(output_dir="runs/demo", epochs=15, seed=0, verbose=2):
    """Trains the four demo models; returns their result dicts."""
    output_dir = Path(output_dir)
    results = []
    for index, (label, model, model_args) in enumerate(DEMO_MODELS):
        print(f"\n=== [{index + 1}/{len(DEMO_MODELS)}] {label}", flush=True)
        config = get_recipe("digits").replace(model=model, model_args=model_args, epochs=epochs)
        run = train(config, output_dir / f"model_{index}", seed=seed, verbose=verbose)
        run["label"] = label
        results.append(run)
    table = format_table(results)
    print("\n" + table)
    (output_dir / "demo.md").write_text(table + "\n")
    (output_dir / "demo.json").write_text(json.dumps(results, indent=2, default=list) + "\n")
    return results


def format_table(results):
    lines = ["| model | parameters | test accuracy | median train step |",
             "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['trainable_parameters']:,} | "
                     f"{100 * r['test']['accuracy']:.2f} % | {r['median_step_ms']:.1f} ms |")
    return "\n".join(lines)
