"""The main job: both blocks trained, compared and exported on the embedded digits.

    memblocks demo            # or: make demo

Trains, on scikit-learn's handwritten digits (32x32, RGB), the CC paper's
VGG-like net without and with reduced CC blocks, and a small CIFAR ResNet-18
without and with an SR block, prints accuracy, parameters and step time,
then exports the CC net and the SR net, each to SavedModel, TFLite (float32
and int8) and ONNX, and prints how each artifact agrees with Keras on
held-out digits. One seed on 450 digits shows that everything runs, not
which net is better: the Fashion-MNIST study compares them over seeds.
A thin script over the public API.
"""

import shlex
import shutil
import sys
from pathlib import Path

import keras
import numpy as np

from keras_memblocks.data import load_digits
from keras_memblocks.export import export_model
from keras_memblocks.training import get_recipe
from keras_memblocks.training import train
from keras_memblocks.training.recipes import cc_after_every_conv
from keras_memblocks.training.recipes import sr_after
from keras_memblocks.training.run_directory import check_ours
from keras_memblocks.utils.files import MARK
from keras_memblocks.utils.files import atomic_write
from keras_memblocks.utils.files import atomic_write_json

DEMO_MODELS = [
    ("VGG-like (CC paper), standard", "vgg_like", {"dataset": "cifar10", "width": 16}),
    (
        "VGG-like (CC paper), reduced CC after every conv",
        "vgg_like",
        {"dataset": "cifar10", "width": 16, "blocks": cc_after_every_conv("reduced")},
    ),
    ("ResNet-18 (width 16), no SR", "cifar_resnet", {"depth": 18, "num_classes": 10, "width": 16}),
    (
        "ResNet-18 (width 16), SR after module 3 (P=4, U=8)",
        "cifar_resnet",
        {"depth": 18, "num_classes": 10, "width": 16, "blocks": sr_after(3, 4, 8)},
    ),
]


# The nets with a block, exported whatever their accuracy: the demo shows the blocks.
EXPORTED = {"cc": 1, "sr": 3}
ONE_SEED = (
    "One seed on 450 held-out digits (one digit is 0.22 points): these accuracies show "
    "that each net trains, not which is better. For that, see the Fashion-MNIST study "
    "over seeds, paired, with intervals (docs: Reproduction)."
)


def run_demo(output_dir="runs/demo", epochs=15, seed=0, verbose=2):
    """Trains the four demo models and exports the two with a block; returns their
    result dicts."""
    output_dir = Path(output_dir)
    outputs = [output_dir / "demo.md", output_dir / "demo.json"]
    for path in outputs:  # before any work: a user's own file of that name is never replaced
        check_ours(path, legacy_starts=("| model | parameters |", "[\n  {"))
    results = []
    for index, (label, model, model_args) in enumerate(DEMO_MODELS):
        print(f"\n=== [{index + 1}/{len(DEMO_MODELS)}] {label}", flush=True)
        config = get_recipe("digits").replace(model=model, model_args=model_args, epochs=epochs)
        run = train(
            config, output_dir / f"model_{index}", seed=seed, verbose=verbose, overwrite=True
        )  # the demo always trains afresh
        run["label"] = label
        results.append(run)
    table = format_table(results) + "\n\n" + ONE_SEED
    for block, index in EXPORTED.items():
        label = results[index]["label"]
        print(f"\n=== exporting {label}", flush=True)
        parity = export_one(results[index]["model_path"], output_dir / "export" / block)
        table += "\n\n" + format_parity(label, parity)
    print("\n" + table)
    atomic_write(outputs[0], f"<!-- {MARK}: demo -->\n{table}\n")
    atomic_write_json(outputs[1], results)
    print("\n" + hand_off(output_dir, results), flush=True)
    return results


def _command(name):
    """`name` as a user's shell finds it, or the absolute path of the one installed
    beside this Python (a virtual environment that is not activated)."""
    if shutil.which(name):
        return name
    return shlex.quote(str(Path(sys.executable).with_name(name)))


def hand_off(output_dir, results):
    """Where the demo's outputs are, and the commands a user would type next, each
    runnable as printed from the directory the demo ran in."""
    export_dir = output_dir / "export"
    digit = shlex.quote(str(export_dir / "digit.npy"))
    cc_model = shlex.quote(str(results[EXPORTED["cc"]]["model_path"]))
    runs = "\n".join(
        f"  {Path(r['model_path']).parent}/   {r['label']}: best.keras, history.csv, results.json"
        for r in results
    )
    memblocks = _command("memblocks")
    cc_int8 = shlex.quote(str(export_dir / "cc" / "int8" / "model_int8.tflite"))
    sr_onnx = shlex.quote(str(export_dir / "sr" / "float32" / "model.onnx"))
    return f"""=== done. Outputs:
  {output_dir / "demo.md"}   the tables above ({output_dir / "demo.json"}: every number)
{runs}
  {export_dir}/cc/ and {export_dir}/sr/   the CC and the SR net: float32/ (saved_model/,
      model.tflite, model.onnx, manifest.json with hashes and parity), int8/ (model_int8.tflite)
  {export_dir / "digit.npy"}  a held-out digit for `memblocks predict`

Next:
  {memblocks} export {cc_model} --quantize int8 --output-dir runs/my_export
  {memblocks} predict {cc_int8} {digit}   # on a device: ai-edge-litert and NumPy only
  {memblocks} predict {sr_onnx} {digit}
  {memblocks} train --recipe digits --epochs 5 --output-dir runs/mine   # train one yourself
  make docs   # the guides and the API reference: open site/index.html in a browser"""


def export_one(model_path, export_dir):
    """Float export (SavedModel, TFLite, ONNX) and an int8 TFLite, verified.

    Calibration images come from the digits' training part, parity inputs
    are the held-out test digits. Returns {artifact: parity result}.
    """
    model = keras.saving.load_model(model_path)
    (x_train, _), (x_test, _) = load_digits(int(model.input.shape[1]), channels=3)
    export_dir.mkdir(parents=True, exist_ok=True)
    np.save(export_dir.parent / "digit.npy", x_test[0])  # what `memblocks predict` reads
    # The files carry the class names (what `memblocks predict` prints beside the class).
    labels = [str(digit) for digit in range(10)]
    common = dict(parity_inputs=x_test, overwrite=True, labels=labels)
    parity = dict(export_model(model, export_dir / "float32", **common)["parity"])
    int8 = export_model(
        model,
        export_dir / "int8",
        formats=("tflite",),
        quantization="int8",
        representative_data=x_train[:256],
        **common,
    )["parity"]
    parity["tflite int8"] = int8["tflite"]
    return parity


def format_parity(label, parity):
    lines = [
        f"Export of {label}, against the Keras model on the held-out digits:",
        "",
        "| artifact | max abs diff | top-1 agreement |",
        "|---|---|---|",
    ]
    for name, result in parity.items():
        lines.append(
            f"| {name} | {result['max_abs_diff']:.2e} | {100 * result['top1_agreement']:.2f} % |"
        )
    return "\n".join(lines)


def format_table(results):
    lines = ["| model | parameters | test accuracy | median train step |", "|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['label']} | {r['trainable_parameters']:,} | "
            f"{100 * r['test']['accuracy']:.2f} % | {r['median_step_ms']:.1f} ms |"
        )
    return "\n".join(lines)
