"""The `memblocks` command: `memblocks train | reproduce | export | demo`."""

import argparse
import json
import shlex
import sys

FLAGS = {  # command-line flag -> recipe field
    "model": "model",
    "model_args": "model_args",
    "dataset": "dataset",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "data_dir": "data_dir",
    "strategy": "strategy",
    "max_steps_per_epoch": "max_steps_per_epoch",
}


def _value(text):
    """A `--set` value: JSON when it parses (numbers, lists, dicts), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _json_value(text):
    """`--model-args`: a JSON object, or a clear argparse error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({error.msg} at column {error.colno}): {text!r}; "
            """e.g. '{"depth": 34}' with double quotes"""
        ) from None


def _train_parser(subparsers):
    from keras_memblocks.training import RECIPES
    from keras_memblocks.training import recipes
    from keras_memblocks.training import specs

    p = subparsers.add_parser(
        "train",
        help="train a recipe (every field overridable)",
        description="Train a named recipe; override any field with --set FIELD=VALUE, "
        "a --config YAML/JSON file, or the shortcuts below.",
    )
    p.add_argument(
        "--recipe",
        default="digits",
        choices=list(RECIPES),
        help="the papers' settings (default: digits, the embedded dataset)",
    )
    p.add_argument("--config", help="YAML or JSON file of recipe fields")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one recipe field (VALUE parsed as JSON when possible)",
    )
    p.add_argument("--model", choices=list(specs.MODELS))
    p.add_argument(
        "--model-args",
        type=_json_value,
        help="""JSON dict of builder arguments, e.g. '{"depth": 34, "blocks": """
        """{"block": "sr", "after": 3, "num_memory_blocks": 4}}'""",
    )
    p.add_argument("--dataset", choices=list(specs.DATASETS))
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--data-dir")
    p.add_argument("--max-steps-per-epoch", type=int)
    p.add_argument(
        "--strategy",
        choices=recipes.STRATEGIES,
        help="none, mirrored (all local GPUs) or multiworker (TF_CONFIG)",
    )
    p.add_argument("--mixed-precision", action="store_true")
    p.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force XLA on (--jit-compile) or off (--no-jit-compile); default: Keras' "
        "'auto', XLA on a GPU or with JAX, graph mode on a TensorFlow CPU",
    )
    p.add_argument("--tensorboard", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--output-dir", default=None, help="default: runs/<recipe>")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train again a seed whose run already finished (its files are replaced); "
        "without it a finished run is kept and reported",
    )
    p.add_argument(
        "--stand-in-data",
        type=int,
        nargs="?",
        const=16,
        default=None,
        metavar="N",
        help="run the recipe's real pipeline on N (16) generated examples per split of "
        "the dataset's shape: checks that a recipe runs here before the data is "
        "downloaded (the accuracy means nothing; use a small --batch-size)",
    )
    return p


def config_from_args(args):
    """The recipe with the file, `--set` and flag overrides applied, validated."""
    from keras_memblocks.training import get_recipe
    from keras_memblocks.training import load_config_file

    overrides = load_config_file(args.config) if args.config else {}
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set takes FIELD=VALUE. Received: {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = _value(value)
    for flag, name in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[name] = value
    for flag in ("mixed_precision", "tensorboard"):
        if getattr(args, flag):
            overrides[flag] = True
    if args.jit_compile is not None:
        overrides["jit_compile"] = args.jit_compile
    return get_recipe(args.recipe).replace(**overrides).validate()


def _calibration_images(source, input_shape):
    """(representative, held-out) images for quantization and parity."""
    import numpy as np

    height, width, channels = input_shape
    if source == "digits":
        if height != width or height < 8 or channels not in (1, 3):
            raise ValueError(
                f"The digits cannot feed a model taking {input_shape}; pass a .npy "
                "file of images with --calibration."
            )
        from keras_memblocks.data import load_digits

        (x_train, _), (x_test, _) = load_digits(height, channels=channels)
        return x_train[:256], x_test[:256]
    from pathlib import Path

    if not Path(source).is_file():
        raise ValueError(f"No calibration file {source!r}: give 'digits' or a .npy file of images.")
    try:
        images = np.load(source).astype("float32")
    except (ValueError, OSError) as error:
        raise ValueError(f"{source} is not a .npy array of images: {error}") from None
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape):
        raise ValueError(f"{source}: images of shape {images.shape}, the model takes {input_shape}")
    half = len(images) // 2
    return images[:half], images[half:]


def _export(args):
    from pathlib import Path

    from keras_memblocks.export import export_model
    from keras_memblocks.model_files import load_model_file

    path = Path(args.model)
    # The optimizer is not exported: compile=False also lets a model whose
    # optimizer came from another package export.
    model = load_model_file(path, compile=False)
    inputs = model.inputs
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        shapes = ", ".join(str(tuple(i.shape)) for i in inputs)
        raise ValueError(
            f"{path.name} takes inputs of shape {shapes}; memblocks export exports "
            "image models with one (batch, height, width, channels) input."
        )
    representative, held_out = _calibration_images(args.calibration, tuple(model.input.shape[1:]))
    output_dir = args.output_dir or str(path.with_name(f"{path.stem}_export"))
    manifest = export_model(
        model,
        output_dir,
        formats=tuple(args.formats),
        quantization=args.quantize,
        representative_data=representative,
        parity_inputs=held_out,
        overwrite=args.overwrite,
    )
    print(f"exported to {output_dir} ({manifest['parity_examples']} held-out images)")
    print("| artifact | max abs diff | top-1 agreement |\n|---|---|---|")
    for name, result in manifest["parity"].items():
        print(f"| {name} | {result['max_abs_diff']:.2e} | {100 * result['top1_agreement']:.2f} % |")
    return 0


def export_command(model_path, input_shape):
    """The `memblocks export` command line for a trained model."""
    command = f"memblocks export {shlex.quote(str(model_path))}"
    height, width, channels = input_shape
    if height != width or channels not in (1, 3):  # the digits cannot calibrate it
        command += " --calibration images.npy   # your (N, H, W, C) images"
    return command


def _train(args):
    import contextlib

    from keras_memblocks.data import stand_in_data
    from keras_memblocks.training import train_seeds
    from keras_memblocks.training.trainer import build_model

    config = config_from_args(args)
    model = None
    if config.strategy != "multiworker":  # that strategy must come before any TF op
        model = build_model(config)  # a bad model or block fails here, before any data is read
    output_dir = args.output_dir or f"runs/{args.recipe}"
    data = (
        stand_in_data(num_examples=args.stand_in_data)
        if args.stand_in_data
        else contextlib.nullcontext()
    )
    with data:
        summary = train_seeds(config, args.seeds, output_dir, overwrite=args.overwrite)
    print(
        f"\n{summary['metric']}: {summary['mean']:.2f} ± {summary['sd']:.2f} "
        f"over seeds {summary['seeds']} (summary in {output_dir}/summary.md)"
    )
    best_index = (min if summary["metric"] == "loss" else max)(
        range(len(summary["values"])), key=summary["values"].__getitem__
    )
    best_path = summary["model_paths"][best_index]
    print(f"best model: {best_path}")
    if model is not None:
        print(f"export it:  {export_command(best_path, tuple(model.input.shape[1:]))}")
    return 0


def _parser():
    from keras_memblocks.training.reproduction import GRIDS

    parser = argparse.ArgumentParser(prog="memblocks", description="keras-memblocks command line")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _train_parser(subparsers)
    reproduce = subparsers.add_parser("reproduce", help="run a published table's experiment grid")
    reproduce.add_argument("table", choices=list(GRIDS))
    reproduce.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    reproduce.add_argument("--data-dir")
    reproduce.add_argument("--output-dir", default="runs/reproduce")
    reproduce.add_argument(
        "--quick",
        action="store_true",
        help="check the grid on generated data (every model built, 2 rows trained 1 step)",
    )
    export = subparsers.add_parser("export", help="export a .keras model, verified against Keras")
    export.add_argument("model", help="a .keras file")
    export.add_argument("--output-dir", help="default: <model>_export beside the model")
    export.add_argument("--formats", nargs="+", default=["saved_model", "tflite", "onnx"])
    export.add_argument("--quantize", help="TFLite quantization: float16, dynamic_range or int8")
    export.add_argument(
        "--calibration",
        default="digits",
        help="'digits' (the embedded dataset) or a .npy file of images: "
        "int8 calibration from its first half, parity on its second",
    )
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty output directory (an empty one is used as is)",
    )
    demo = subparsers.add_parser("demo", help="the main job on the embedded digits")
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--epochs", type=int, default=15)
    return parser


def main(argv=None):
    from keras_memblocks import tensorflow_stack

    # Every command feeds tf.data (and the choices come from the training
    # registries); demo and export also convert with TensorFlow.
    words = sys.argv[1:] if argv is None else argv
    command = f"memblocks {words[0]}" if words and not words[0].startswith("-") else "memblocks"
    try:
        tensorflow_stack.require(command, tensorflow_stack.DATA)
        args = _parser().parse_args(argv)
        exports = args.command in ("demo", "export")
        if exports:
            tensorflow_stack.require(f"memblocks {args.command}", tensorflow_stack.EXPORT)
    except tensorflow_stack.MissingTensorFlowError as error:
        print(f"memblocks: error: {error}", file=sys.stderr)
        return 2
    from keras_memblocks.data import DatasetNotFoundError

    user_errors = [ValueError, DatasetNotFoundError]
    if exports:
        from keras_memblocks.export import ExportError

        user_errors.append(ExportError)
    try:
        if args.command == "demo":
            from keras_memblocks.demo import run_demo

            run_demo(args.output_dir, args.epochs)
            return 0
        if args.command == "export":
            return _export(args)
        if args.command == "reproduce":
            from keras_memblocks.training.reproduction import reproduce

            rows = reproduce(
                args.table,
                args.output_dir,
                seeds=args.seeds,
                quick=args.quick,
                data_dir=args.data_dir,
            )
            print(f"{len(rows)} rows; table in {args.output_dir}/{args.table}.md")
            return 0
        return _train(args)
    except tuple(user_errors) as error:
        print(f"memblocks: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
