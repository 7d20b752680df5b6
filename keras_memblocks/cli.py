"""The `memblocks` command: `memblocks train | reproduce | export | demo`.

The parser imports no Keras (with TensorFlow installed, `import keras`
imports it: about 5 s), so `memblocks --help` and every subcommand's
`--help` answer at once, in any install. Each subcommand then checks its
extras (one line naming the `pip install` if one is missing) and imports
what it runs.
"""

import argparse
import contextlib
import errno
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from keras_memblocks import registry
from keras_memblocks.utils import extras
from keras_memblocks.utils.console import native_stderr_captured
from keras_memblocks.utils.console import quiet_tensorflow
from keras_memblocks.utils.strategies import STRATEGIES
from keras_memblocks.utils.strategies import check_backend
from keras_memblocks.utils.supervision import DEFAULT_PEER_TIMEOUT
from keras_memblocks.utils.supervision import JOINED_FD

# What each subcommand runs on.
COMMAND_EXTRAS = {
    "train": ("train",),
    "reproduce": ("train",),
    "export": ("export",),  # + "data" where the digits calibrate it (see _export_extras)
    "demo": ("train", "export"),
    "predict": (),  # the file's runtime, named by `memblocks predict` when it is missing
}

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


def _examples(*commands, kinds=()):
    """The end of a command's --help: the registries it chooses from, each
    name with its help line (`keras_memblocks.registry`), then examples."""
    listings = [f"{kind}:\n{registry.help_lines(registry.KINDS[kind])}\n" for kind in kinds]
    return "\n".join([*listings, "examples:", *(f"  {command}" for command in commands)])


def _train_parser(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train a recipe (every field overridable)",
        description="Train a named recipe; override any field with --set FIELD=VALUE, "
        "a --config YAML/JSON file, or the shortcuts below.",
        epilog=_examples(
            "memblocks train --recipe digits --epochs 5 --output-dir runs/mine",
            "memblocks train --recipe cc-fashion-mnist --seeds 0 1 2 --output-dir runs/fmnist",
            "memblocks train --recipe digits --set optimizer=sgd --set learning_rate=0.05",
            kinds=("recipes", "models", "datasets"),
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--recipe",
        default="digits",
        choices=registry.RECIPES,
        help="the papers' settings (default: digits, the embedded dataset)",
    )
    p.add_argument("--config", help="YAML or JSON file of recipe fields (at most 100 KB)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one recipe field (VALUE parsed as JSON when possible)",
    )
    p.add_argument(
        "--model", choices=registry.MODELS, help="the network to build (default: the recipe's)"
    )
    p.add_argument(
        "--model-args",
        type=_json_value,
        help="""JSON dict of builder arguments, e.g. '{"depth": 34, "blocks": """
        """{"block": "sr", "after": 3, "num_memory_blocks": 4}}'""",
    )
    p.add_argument("--dataset", choices=registry.DATASETS, help="the data (default: the recipe's)")
    p.add_argument("--epochs", type=int, help="epochs to train")
    p.add_argument("--batch-size", type=int, help="the global batch size")
    p.add_argument("--learning-rate", type=float, help="the initial learning rate")
    p.add_argument("--weight-decay", type=float, help="L2 (SGD) or decoupled (AdamW) decay")
    p.add_argument("--data-dir", help="tensorflow-datasets' data folder")
    p.add_argument(
        "--max-steps-per-epoch", type=int, help="cap each epoch at N batches (quick runs)"
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="none, mirrored (all local GPUs, TensorFlow), multiworker (TF_CONFIG, "
        "TensorFlow) or data-parallel (every device of every process, JAX)",
    )
    cluster = p.add_argument_group(
        "data-parallel across processes (JAX)",
        "start the same command on every process; unset, these come from Keras' "
        "KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_NUM_PROCESSES and "
        "KERAS_DISTRIBUTION_PROCESS_ID",
    )
    cluster.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    cluster.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    cluster.add_argument(
        "--process-id", type=int, metavar="I", help="this process: 0 (writes the files) .. N-1"
    )
    cluster.add_argument(
        "--peer-timeout",
        type=float,
        default=float(DEFAULT_PEER_TIMEOUT),
        metavar="SECONDS",
        help="give up when the run's processes (data-parallel or multiworker) have not all "
        f"started within this (default: {DEFAULT_PEER_TIMEOUT})",
    )
    p.add_argument("--mixed-precision", action="store_true", help="train in mixed_float16 (GPUs)")
    p.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force XLA on (--jit-compile) or off (--no-jit-compile); default: Keras' "
        "'auto', XLA on a GPU or with JAX, graph mode on a TensorFlow CPU",
    )
    p.add_argument(
        "--tensorboard", action="store_true", help="write TensorBoard logs beside the run"
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)"
    )
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

    overrides = getattr(args, "config_overrides", None)  # main() reads the file first
    if overrides is None:
        from keras_memblocks.utils.config_files import load_config_file

        overrides = load_config_file(args.config) if args.config else {}
    overrides = dict(overrides)
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
    from keras_memblocks.utils.files import check_regular_file

    check_regular_file(source, "calibration file (give 'digits' or a .npy file of images)")
    try:
        images = np.load(source, allow_pickle=False).astype("float32")
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{source} is not a .npy array of images: {error}") from None

    def fits(shape):
        return len(shape) == 3 and all(e is None or e == g for e, g in zip(input_shape, shape))

    if images.ndim == 3 and fits(images.shape):
        raise ValueError(
            f"{source} holds one image of shape {images.shape}, without the batch axis; "
            f"save a batch of images, shape (N, {', '.join(map(str, input_shape))})."
        )
    if images.ndim != 4 or not fits(images.shape[1:]):
        raise ValueError(
            f"{source} holds an array of shape {images.shape}; the model takes a batch of "
            f"images of shape (N, {', '.join(map(str, input_shape))})."
        )
    if len(images) < 2:
        raise ValueError(f"{source} holds {len(images)} image; give at least 2 (half calibrate).")
    from keras_memblocks.export.model_export import check_finite_images

    images = check_finite_images(images, source)
    half = len(images) // 2
    return images[:half], images[half:]


def _labels(source):
    """The class names in the text file `source`, one per line (None: no file)."""
    if source is None:
        return None
    from keras_memblocks.utils.files import check_regular_file

    size = check_regular_file(source, "labels file (a text file, one class name per line)")
    if size > 1_000_000:
        raise ValueError(f"{source} is {size} bytes; a labels file is one name per line.")
    try:
        lines = Path(source).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{source} is not a UTF-8 text file of class names: {error}") from None
    return [line.strip() for line in lines if line.strip()]


def _export(args):
    from keras_memblocks.export import export_model
    from keras_memblocks.export.model_export import check_out_dir
    from keras_memblocks.model_files import load_model_file

    path = Path(args.model)
    output_dir = args.output_dir or str(path.with_name(f"{path.stem}_export"))
    check_out_dir(output_dir, args.overwrite, holds=[path])  # before any work
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
    input_shape = tuple(model.input.shape[1:])
    if None in input_shape and args.calibration == "digits":
        raise ValueError(
            f"{path.name} takes images of any height and width {input_shape}; give images at "
            "the size it should run at with --calibration images.npy (N, H, W, C)."
        )
    representative, held_out = _calibration_images(args.calibration, input_shape)
    labels = _labels(args.labels)
    manifest = export_model(
        model,
        output_dir,
        formats=tuple(args.formats),
        quantization=args.quantize,
        representative_data=representative,
        parity_inputs=held_out,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        io_type=args.io_type,
        labels=labels,
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
    from keras_memblocks.data import stand_in_data
    from keras_memblocks.training import train_seeds
    from keras_memblocks.training.plan import build_model

    config = config_from_args(args)
    output_dir = args.output_dir or f"runs/{args.recipe}"
    process = 0
    if config.strategy == "data-parallel":  # JAX joins the processes before it computes
        process = _join_processes(args, output_dir)
    model = None
    if config.strategy != "multiworker":  # that strategy must come before any TF op
        model = build_model(config)  # a bad model or block fails here, before any data is read
    data = (
        stand_in_data(num_examples=args.stand_in_data)
        if args.stand_in_data
        else contextlib.nullcontext()
    )
    with data:
        summary = train_seeds(config, args.seeds, output_dir, overwrite=args.overwrite)
    if summary is None:  # not process 0
        print(f"process {process}: done; process 0 wrote the results to {output_dir}")
        return 0
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


def _join_processes(args, output_dir):
    """Joins the other processes of a data-parallel run (`--coordinator` ...);
    returns this process's id. `_supervised` ends it, in one line, when they
    have not all started within `--peer-timeout`."""
    from keras_memblocks.training import distribution

    coordinator, count, index = distribution.cluster_from_environment(
        args.coordinator, args.num_processes, args.process_id
    )
    if count in (None, 1) and coordinator is None:
        return 0  # one process: every local device
    where = f"process {index} of {count}" if index is not None else "this process"
    print(
        f"memblocks: {where}: waiting up to {args.peer_timeout:g} s for every process "
        f"(coordinator {coordinator or 'from the cluster environment'}); process 0 writes "
        f"the run to {output_dir}.",
        file=sys.stderr,
        flush=True,
    )
    # JAX's own limit comes later: it ends the process with a native abort.
    process, _ = distribution.connect(coordinator, count, index, args.peer_timeout + 60)
    return process


def _parser():
    from keras_memblocks import __version__

    parser = argparse.ArgumentParser(prog="memblocks", description="keras-memblocks command line")
    parser.add_argument("--version", action="version", version=f"memblocks {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, help="what to do")
    _train_parser(subparsers)
    reproduce = subparsers.add_parser(
        "reproduce",
        help="run a published table's experiment grid",
        epilog=_examples(
            "memblocks reproduce fmnist-cc --seeds 0 1 2 --output-dir runs/fmnist-cc",
            "memblocks reproduce sr-table1 --quick   # every model built, on generated data",
            kinds=("grids",),
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reproduce.add_argument("table", choices=registry.GRIDS, help="the grid to run")
    reproduce.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds of every row"
    )
    reproduce.add_argument("--data-dir", help="tensorflow-datasets' data folder")
    reproduce.add_argument(
        "--output-dir", default="runs/reproduce", help="where the runs go (default: %(default)s)"
    )
    reproduce.add_argument(
        "--quick",
        action="store_true",
        help="check the grid on generated data (every model built, 2 rows trained 1 step)",
    )
    export = subparsers.add_parser(
        "export",
        help="export a .keras model, verified against Keras",
        epilog=_examples(
            "memblocks export runs/mine/seed_0/best.keras",
            "memblocks export runs/mine/seed_0/best.keras --quantize int8 --batch-size 1 "
            "--io-type uint8 --output-dir device",
            kinds=("export formats", "I/O types"),
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("model", help="a .keras file")
    export.add_argument("--output-dir", help="default: <model>_export beside the model")
    export.add_argument(
        "--formats",
        nargs="+",
        choices=registry.EXPORT_FORMATS,
        default=list(registry.EXPORT_FORMATS),
        help="the files to write (default: all)",
    )
    export.add_argument("--quantize", help="TFLite quantization: float16, dynamic_range or int8")
    export.add_argument(
        "--calibration",
        default="digits",
        help="'digits' (the embedded dataset) or a .npy file of images: "
        "int8 calibration from its first half, parity on its second",
    )
    export.add_argument(
        "--batch-size",
        type=int,
        help="a fixed batch for every file (1 for a device: static shapes, what TFLite "
        "Micro and NPUs need); default: any batch",
    )
    export.add_argument(
        "--io-type",
        choices=registry.IO_TYPES,
        default="float32",
        help="input and output type of an int8 TFLite file (with --quantize int8); "
        "default: %(default)s",
    )
    export.add_argument(
        "--labels",
        help="the class names for the files' metadata: a text file with one per line, in "
        "class-index order",
    )
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier export in the output directory (an empty one is used as "
        "is; a folder memblocks did not export to is never replaced)",
    )
    predict = subparsers.add_parser(
        "predict",
        help="classify an image with an exported .tflite or .onnx file (the runtime and "
        "NumPy only)",
        description="Runs one image through an exported file and prints JSON: the top class "
        "and the top 5, with their labels where the file has them; for a segmentation "
        "model, the pixels of each class. Needs only the file's runtime (pip install "
        "ai-edge-litert, or onnxruntime) and NumPy; no TensorFlow, no Keras backend.",
        epilog=_examples(
            "memblocks predict runs/demo/export/cc/int8/model_int8.tflite "
            "runs/demo/export/digit.npy"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("model", help="a .tflite or .onnx file that memblocks export wrote")
    predict.add_argument(
        "image",
        help="a .npy array (H, W, C) preprocessed like the training data, or an image file "
        "(resized and scaled to [0, 1]; needs Pillow)",
    )
    predict.add_argument(
        "--save-mask", metavar="PATH", help="segmentation models: save the (H, W) class map"
    )
    demo = subparsers.add_parser(
        "demo",
        help="the main job on the embedded digits",
        epilog=_examples("memblocks demo", "memblocks demo --epochs 3 --output-dir runs/quick"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--output-dir", default="runs/demo", help="where its runs go (default: %(default)s)"
    )
    demo.add_argument("--epochs", type=int, default=15, help="epochs per net (default: 15)")
    return parser


def _extras_for(args):
    needed = COMMAND_EXTRAS[args.command]
    if args.command == "export" and args.calibration == "digits":
        needed += ("data",)
    return needed


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # `memblocks` alone: what it can do, not a usage error
        _parser().print_help()
        return 0
    args = _parser().parse_args(argv)  # no Keras yet: --help and usage errors are instant
    if args.command == "predict":  # the device side: its runtime and NumPy, no Keras
        return _predict(args)
    try:
        extras.require(_extras_for(args), f"memblocks {args.command}")
    except extras.MissingExtraError as error:
        print(f"memblocks: error: {error}", file=sys.stderr)
        return 2
    if args.command == "train":  # a bad config file is refused before TensorFlow is imported
        # PyYAML comes with the [train] extra, checked above.
        from keras_memblocks.utils.config_files import load_config_file

        try:
            args.config_overrides = load_config_file(args.config) if args.config else {}
            strategy = _requested_strategy(args)
        except ValueError as error:
            print(f"memblocks: error: {error}", file=sys.stderr)
            return 2
        if _several_processes(args, strategy) and not os.environ.get(WORKER_ENV):
            return _supervised(argv, args.peer_timeout)
    # Every subcommand imports TensorFlow: without its C++ start-up lines.
    quiet_tensorflow()
    # What `import keras_memblocks` registers elsewhere (see its __init__), for .keras files.
    from keras_memblocks import layers  # noqa: F401
    from keras_memblocks import models  # noqa: F401
    from keras_memblocks import optimizers  # noqa: F401
    from keras_memblocks.data import DatasetNotFoundError

    # A missing optional extra (tensorboard) found once the config is read is a user's matter too.
    user_errors = [ValueError, DatasetNotFoundError, extras.MissingExtraError]
    if args.command in ("demo", "export"):
        from keras_memblocks.export import ExportError

        user_errors.append(ExportError)
    if args.command == "train":
        from keras_memblocks.training.distribution import RunStoppedError

        user_errors.append(RunStoppedError)  # process 0 said why, in its own output
    # A file left open by a write that filled the disk (h5py's) reports it again as an
    # "exception ignored" when freed: the one line below says it once.
    sys.unraisablehook = _unless_disk_full
    # LiteRT and the TFLite converter print C++ log lines whatever the log level:
    # kept off the console, and shown only with the traceback of a crash of ours.
    with native_stderr_captured() as native, _sigterm_as_interrupt():
        try:
            return _run(args)
        except _Terminated:
            stopped = INTERRUPTED[args.command].replace("interrupted", "stopped by SIGTERM", 1)
            print(f"memblocks: {stopped}", file=sys.stderr)
            return 128 + signal.SIGTERM
        except KeyboardInterrupt:
            print(f"memblocks: {INTERRUPTED[args.command]}", file=sys.stderr)
            return 130
        except tuple(user_errors) as error:
            message = str(error)
        except Exception as error:
            message = _disk_full(error)
            if message is not None:
                # h5py files left open by the failed write cannot be flushed either: each
                # would print an ignored error when freed, and the interpreter's clean-up
                # can crash on them. The run's own files are all in a resumable state.
                print(f"memblocks: error: {message}", file=sys.stderr, flush=True)
                sys.stdout.flush()
                os._exit(2)
            if message is None and _lost_peer(error):
                # A multi-worker or data-parallel run whose peer was killed or cannot be
                # reached: TensorFlow's 64-line traceback says no more than this.
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                first = first.split(": ")[-1][:300]  # JAX repeats its prefix per dispatch
                print(
                    f"memblocks: error: {LOST_PEER} ({type(error).__name__}: {first}); {RESTART}",
                    file=sys.stderr,
                    flush=True,
                )
                sys.stdout.flush()
                # Not the interpreter's exit: JAX would wait there for the lost process.
                os._exit(2)
            if message is None and isinstance(error, OSError) and error.filename is not None:
                # A path the system refused (permission, a file where a folder should be).
                message = f"{error.filename}: {error.strerror or error}"
            if message is None:  # not the user's doing: ours, with its traceback
                native.replay()
                raise
        except BaseException:
            native.replay()
            raise
    print(f"memblocks: error: {message}", file=sys.stderr)
    return 2


LOST_PEER = "another process of the run stopped or cannot be reached"
RESTART = "start every process again with the same command to resume from the last finished epoch."
# TensorFlow's errors when a multi-worker peer dies or never answers.
PEER_ERRORS = ("UnavailableError", "DeadlineExceededError", "CancelledError")
# JAX raises one type for every runtime error; a lost peer's names its transport.
JAX_PEER_MARKS = ("Gloo", "Connection closed by peer", "coordination service", "UNAVAILABLE")


def _lost_peer(error):
    if type(error).__name__ in PEER_ERRORS:
        return True
    return type(error).__name__ in ("JaxRuntimeError", "XlaRuntimeError") and any(
        mark in str(error) for mark in JAX_PEER_MARKS
    )


class _Terminated(KeyboardInterrupt):
    """SIGTERM, taken as Ctrl-C is: the run stops at once, its files resumable."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (`timeout`, `kill`, a scheduler ending a job) stops a command the
    way Ctrl-C does: its lock released, one line, and exit 143. Python's default
    ended it silently, leaving a lock that the next run had to judge stale. A
    handler someone else installed, threads other than the main one, and the
    worker processes `_supervised` runs (it stops them itself) are left alone."""
    if (
        os.environ.get(WORKER_ENV)
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def stop(signum, frame):
        raise _Terminated()

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


INTERRUPTED = {
    "train": "interrupted; re-run the same command to resume (finished epochs are kept).",
    "reproduce": "interrupted; re-run the same command to resume (finished runs are kept).",
    "demo": "interrupted; re-run the same command to resume (finished runs are kept).",
    "export": "interrupted; nothing was exported (re-run the same command).",
}


def _unless_disk_full(unraisable):
    if _disk_full(unraisable.exc_value) is None:
        sys.__unraisablehook__(unraisable)


def _disk_full(error):
    """The one line for a full disk or quota, wherever it was met (Keras, h5py and
    TensorFlow raise it as different exceptions), or `None` for another error."""
    chain, seen = error, []
    while chain is not None and len(seen) < 10:
        seen.append(chain)
        chain = chain.__cause__ or chain.__context__
    for cause in seen:
        full = getattr(cause, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        if full or "No space left on device" in str(cause) or "Disk quota exceeded" in str(cause):
            where = getattr(cause, "filename", None)
            return (
                f"the disk is full{f' (writing {where})' if where else ''}; free some space "
                "and re-run the same command: it resumes from the last finished step."
            )
    return None


WORKER_ENV = "MEMBLOCKS_SUPERVISED_WORKER"


def _requested_strategy(args):
    """The strategy the flags, `--set` and the config file ask for (None: the
    recipe's), read before TensorFlow is imported; tf.distribute's strategies
    are refused at once on another Keras backend."""
    strategy = args.config_overrides.get("strategy")
    for item in args.set:
        key, _, value = item.partition("=")
        if key == "strategy":
            strategy = value
    strategy = args.strategy or strategy
    check_backend(strategy, os.environ.get("KERAS_BACKEND", "tensorflow"))
    cluster_flags = (args.coordinator, args.num_processes, args.process_id)
    if strategy != "data-parallel" and any(flag is not None for flag in cluster_flags):
        raise ValueError(
            "--coordinator, --num-processes and --process-id join the processes of a "
            "--strategy data-parallel run; add --strategy data-parallel."
        )
    if args.peer_timeout <= 0:
        raise ValueError(f"--peer-timeout must be positive, not {args.peer_timeout}.")
    return strategy


def _several_processes(args, strategy):
    """Whether this process is one of several of a multi-worker or data-parallel run."""
    if strategy == "multiworker":
        return True
    if strategy != "data-parallel":
        return False
    count = args.num_processes
    if count is None:
        count = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    return count is not None and str(count) != "1"


def _supervised(argv, peer_timeout):
    """Runs one process of a multi-worker or data-parallel `train` in a child
    process that this one can always stop, and gives up, in one line, when the
    run's other processes have not all started within `peer_timeout` seconds.

    TensorFlow's multi-worker strategy and JAX's distributed runtime install
    SIGTERM handlers that do not end the process, and TensorFlow waits for
    its peers inside a call that holds the interpreter: `timeout`, Slurm and
    Kubernetes could not stop a worker, nor could a thread of its own. Here
    SIGTERM (or a second Ctrl-C) kills the child; the same command resumes
    from its last finished epoch. The child says when every process has
    joined by writing to a pipe (`distribution.say_joined`).
    """
    import select
    import subprocess

    read_end, write_end = os.pipe()
    # Started as the `memblocks` command is (its name in argv[0]), so that the
    # package defers Keras and TensorFlow until their start-up lines are silenced.
    start = "import sys; sys.argv[0] = 'memblocks'; from keras_memblocks.cli import main; "
    child = subprocess.Popen(
        [sys.executable, "-c", start + "sys.exit(main())", *argv],
        env={**os.environ, WORKER_ENV: "1", JOINED_FD: str(write_end)},
        pass_fds=(write_end,),
        preexec_fn=_die_with_parent,
    )
    os.close(write_end)
    stopped = []

    def stop(signum, frame):
        if signum == signal.SIGINT and not stopped:  # the child got it too: give it a moment
            stopped.append(signum)
            try:
                child.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                pass
        stopped.append(signum)
        child.kill()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        # Readable once the child has joined, or has ended (its end of the pipe closes).
        joined, _, _ = select.select([read_end], [], [], peer_timeout)
        if not joined:
            child.kill()
            child.wait()
            print(
                f"memblocks: error: not every process of the run started within "
                f"--peer-timeout {peer_timeout:g} s; start the same command on every one "
                "(each with its own --process-id, or TF_CONFIG task index).",
                file=sys.stderr,
            )
            return 2
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(read_end)
    if stopped and code < 0:
        name = signal.Signals(stopped[-1]).name
        print(
            f"memblocks: worker stopped ({name}); start every worker again with the same "
            "command to resume from the last finished epoch.",
            file=sys.stderr,
        )
        return 128 + stopped[-1]
    if code == -signal.SIGABRT:
        # JAX ends a process whose peer died or stopped answering with a native
        # abort (its message is in the captured native output).
        print(f"memblocks: error: {LOST_PEER}; {RESTART}", file=sys.stderr)
        return 2
    return code if code >= 0 else 128 - code


def _die_with_parent():
    """In a supervised child, before it starts: a `kill -9` of the `memblocks`
    process it runs under kills it too (Linux), instead of leaving it training
    on, unseen, with the run's lock."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _predict(args):
    from keras_memblocks import edge

    # LiteRT prints an INFO line for its XNNPACK delegate on every load: kept off
    # the console, and shown only with the traceback of a crash of ours.
    with native_stderr_captured() as native:
        try:
            result = edge.predict(args.model, args.image, args.save_mask)
        except ValueError as error:
            message = str(error)
        except KeyboardInterrupt:
            return 130
        except BaseException:
            native.replay()
            raise
        else:
            message = None
    if message is not None:
        print(f"memblocks: error: {message}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def _run(args):
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


if __name__ == "__main__":
    sys.exit(main())
