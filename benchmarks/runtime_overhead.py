"""What each block costs in each runtime: block / plain, measured side by side.

One command, one table: SE, CBAM, CC (reduced and full) and SR on two nets,
each ratio against the same net without blocks, interleaved in one process
per backend (a Keras backend is chosen per process):

- TensorFlow: train and inference steps in graph mode and with XLA
  (`jit_compile=True`); the float32 and int8 TFLite files at batch 1 (LiteRT,
  XNNPACK); the ONNX file at batch 1 (ONNX Runtime, CPU). Every file comes
  from `export_model`, so it has passed its parity check first.
- JAX (XLA): train and inference steps.
- PyTorch (eager): train and inference steps.

Nets (untrained weights, blocks perturbed off the identity, batch norm
calibrated on digits; speed does not depend on training):

- `vgg`: the CC paper's CIFAR-10 VGG-like net, width 32, 32x32x3, with the
  block after every conv (SR: once, after stage 3, P=10, U=8, the SR paper's
  placement; after every conv its memories would hold 1.6M weights);
- `mobilenet`: `keras.applications.MobileNetV2` at 128x128x3, with the block
  after every project conv's batch norm (17 sites; SR: once, after
  block 12's, 8x8x96 at this size, P=10, U=8).

Steps: train and inference at `--batch-size` (vgg) / `--mobilenet-batch`;
the exported files at batch 1, one thread. The ratio is block / plain at
the 20th percentile of the rounds (least disturbed by a shared machine);
the medians are in the result file too. `se_relative` is CC's overhead
over SE's, (CC - 1) / (SE - 1): the target is at most 2 in every runtime.

Op-level profiles, for what bounds each ratio: ONNX Runtime's own profiler
(milliseconds per op type per call), the TFLite and ONNX op counts and the
pieces XNNPACK runs each TFLite file in, and on JAX the pieces XLA's CPU
compiler hands to its kernel library.

    python -m benchmarks.runtime_overhead               # all three backends, ~30 min on 2 cores
    python -m benchmarks.runtime_overhead --quick       # a smoke run (seconds of timing)

JAX and PyTorch run in other environments (Keras picks its backend per
process): `--jax-python` / `--torch-python`, by default `.venv-jax` and
`.venv-torch` of this repository where they exist (`make test` creates the
first, `make test-torch` the second); a backend without one is recorded as
not measured. Writes benchmarks/results/runtime_overhead.json and the chart
docs/figures/runtime_overhead.png.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "runtime_overhead.json"
CHART = ROOT / "docs" / "figures" / "runtime_overhead.png"
BLOCKS = ("se", "cbam", "cc_reduced", "cc_full", "sr")
NETS = ("vgg", "mobilenet")
RUNTIMES = {
    "tensorflow": (
        "tf_graph_train",
        "tf_graph_inference",
        "xla_train",
        "xla_inference",
        "tflite_float32",
        "tflite_int8",
        "onnxruntime",
    ),
    "jax": ("jax_train", "jax_inference"),
    "torch": ("torch_train", "torch_inference"),
}
MOBILENET_SIZE = 128


# === The nets (every backend) ===


def block_args(block):
    """`(registry name, arguments)` of a benchmarked block."""
    if block.startswith("cc_"):
        return "cc", {"variant": block[3:]}
    if block == "sr":
        return "sr", {"num_memory_blocks": 10, "hidden_units": 8}
    return block, {}


def build(net, block):
    """The net with `block` (None: plain), blocks off the identity."""
    import keras
    import numpy as np

    from keras_memblocks.models import insert_blocks
    from keras_memblocks.models import vgg_like

    keras.utils.set_random_seed(0)
    name, args = block_args(block) if block else (None, {})
    if net == "vgg":
        every_conv = None if block in (None, "sr") else {"block": name, "after": "conv", **args}
        model = vgg_like("cifar10", width=32, blocks=every_conv)
        sites = ["stage3_conv1"] if block == "sr" else []
    else:
        model = keras.applications.MobileNetV2(
            weights=None, input_shape=(MOBILENET_SIZE, MOBILENET_SIZE, 3)
        )
        sites = [layer.name for layer in model.layers if layer.name.endswith("project_BN")]
        sites = ["block_12_project_BN"] if block == "sr" else sites if block else []
    if sites:
        model = insert_blocks(model, name, sites, **args)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # SR memories and CC's last coefficient layer start at zero
        if layer.name.endswith(("_cc", "_sr")):
            for weight in layer.weights:
                weight.assign(
                    keras.ops.convert_to_numpy(weight) + 0.1 * rng.normal(size=weight.shape)
                )
    return model


def calibrated(net, block):
    """`build`, with batch norm statistics from digits (untrained, MobileNetV2's
    activations vanish and its outputs would not depend on the input)."""
    from keras_memblocks.data import load_digits
    from keras_memblocks.models import calibrate_batch_norm

    model = build(net, block)
    size = model.input.shape[1]
    (x_train, _), (x_test, _) = load_digits(size)
    calibrate_batch_norm(model, x_train[:32])
    return model, x_train, x_test


def step_timers(models, x, y, jit_compile):
    """`{(model, "train" | "inference"): call}` for compiled Keras models."""
    import keras

    calls = {}
    for name, model in models.items():
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile=jit_compile,
        )
        calls[(name, "train")] = lambda m=model: m.train_on_batch(x, y)
        calls[(name, "inference")] = lambda m=model: m.predict_on_batch(x)
    return calls


def quantiles(seconds):
    import numpy as np

    values = np.asarray(seconds)
    return {
        "p20_ms": round(1e3 * float(np.quantile(values, 0.2)), 4),
        "median_ms": round(1e3 * float(np.median(values)), 4),
    }


def time_steps(calls, rounds, warmup, label):
    from benchmarks.interleaved_timing import time_interleaved

    print(f"  [{label}] warm-up: tracing and compiling {len(calls)} steps", flush=True)
    time_interleaved(calls, warmup)
    print(f"  [{label}] {rounds} interleaved rounds", flush=True)
    return {key: quantiles(values) for key, values in time_interleaved(calls, rounds).items()}


def batch_for(net, args):
    import numpy as np

    size = 32 if net == "vgg" else MOBILENET_SIZE
    batch = args.batch_size if net == "vgg" else args.mobilenet_batch
    rng = np.random.default_rng(0)
    return rng.random((batch, size, size, 3), dtype=np.float32), rng.integers(0, 10, batch)


def labels_for(model, y):
    return y % int(model.output.shape[-1])


def measure_steps(net, args, modes):
    """`{runtime: {model: quantiles}}` of the train and inference steps."""
    x, y = batch_for(net, args)
    models = [None, *args.blocks]
    results = {}
    for mode, jit_compile in modes:
        built = {block or "plain": build(net, block) for block in models}
        labels = labels_for(built["plain"], y)
        timed = time_steps(
            step_timers(built, x, labels, jit_compile), args.rounds, args.warmup, f"{net} {mode}"
        )
        for kind in ("train", "inference"):
            results[f"{mode}_{kind}"] = {name: timed[(name, kind)] for name in built}
    return results


# === TensorFlow: the exported files ===


def onnx_session(path, profile_dir=None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(profile_dir) / "profile")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_profile(path, image, calls=50):
    """ONNX Runtime's profiler: milliseconds per call spent in each op type."""
    from collections import defaultdict

    with tempfile.TemporaryDirectory() as folder:
        session = onnx_session(path, folder)
        feed = {session.get_inputs()[0].name: image}
        for _ in range(calls):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1e3 / calls
    return {op: round(ms, 4) for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1])}


def op_counts(tflite_path, onnx_path):
    from collections import Counter

    import onnx
    from ai_edge_litert.interpreter import Interpreter

    tflite = Interpreter(model_path=str(tflite_path))._get_ops_details()
    return {
        "tflite_float32": sum(Counter(op["op_name"] for op in tflite).values()),
        "onnx": len(onnx.load(str(onnx_path)).graph.node),
    }


def measure_files(net, args, work_dir):
    """Batch-1 latency of the float32 / int8 TFLite and ONNX files, and the profiles."""
    from benchmarks.interleaved_timing import time_interleaved
    from keras_memblocks.export import export_model
    from keras_memblocks.export import tflite_interpreter
    from keras_memblocks.export.runtimes import xnnpack_pieces

    calls, notes = {}, {}
    for block in [None, *args.blocks]:
        name = block or "plain"
        print(f"  [{net} files] exporting {name} (float32, int8; parity checked)", flush=True)
        model, x_train, x_test = calibrated(net, block)
        out = Path(work_dir) / net / name
        float_export = export_model(
            model, out / "float", formats=("tflite", "onnx"), parity_inputs=x_test[:8]
        )
        int8_export = export_model(
            model,
            out / "int8",
            formats=("tflite",),
            quantization="int8",
            representative_data=x_train[: args.calibration],
            parity_inputs=x_test[:64],
        )
        image = x_test[:1]
        tflite = out / "float" / "model.tflite"
        int8 = out / "int8" / "model_int8.tflite"
        session = onnx_session(out / "float" / "model.onnx")
        feed = {session.get_inputs()[0].name: image}
        calls[(name, "tflite_float32")] = tflite_interpreter(tflite, image, 1).invoke
        calls[(name, "tflite_int8")] = tflite_interpreter(int8, image, 1).invoke
        calls[(name, "onnxruntime")] = lambda s=session, f=feed: s.run(None, f)
        notes[name] = {
            "parameters": int(model.count_params()),
            "int8_top1_agreement": int8_export["parity"]["tflite"]["top1_agreement"],
            "float_max_abs_diff": max(
                float_export["parity"][f]["max_abs_diff"] for f in ("tflite", "onnx")
            ),
            "op_counts": op_counts(tflite, out / "float" / "model.onnx"),
            "xnnpack_partitions": {
                "tflite_float32": xnnpack_pieces(tflite),
                "tflite_int8": xnnpack_pieces(int8),
            },
            "onnxruntime_profile_ms": onnx_profile(out / "float" / "model.onnx", image),
        }
    print(f"  [{net} files] warm-up and {args.file_rounds} interleaved rounds", flush=True)
    time_interleaved(calls, args.warmup)
    timed = {key: quantiles(v) for key, v in time_interleaved(calls, args.file_rounds).items()}
    results = {}
    for runtime in ("tflite_float32", "tflite_int8", "onnxruntime"):
        results[runtime] = {name: timed[(name, runtime)] for name in notes}
    return results, notes


# === One backend's worker ===


def xla_library_fusions(net, args):
    """JAX on a CPU: the pieces XLA hands its kernel library, per model (inference)."""
    import jax

    if jax.default_backend() != "cpu":
        return None
    x, _ = batch_for(net, args)
    pieces = {}
    for block in [None, *args.blocks]:
        model = build(net, block)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def infer(trainable, non_trainable, x, model=model):
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        text = jax.jit(infer).lower(trainable, non_trainable, x).compile().as_text()
        pieces[block or "plain"] = sum(
            text.count(f'"kind":"{kind}"') for kind in ("__ynn_fusion", "__xnn_fusion")
        )
    return pieces


def worker(args):
    import keras

    from benchmarks.interleaved_timing import machine

    backend = keras.backend.backend()
    result = {"machine": machine(), "nets": {}}
    if backend == "tensorflow":
        import tensorflow as tf

        # One thread everywhere: the ratios of a shared 2-core machine are
        # steadier, and batch-1 edge runtimes are timed single-threaded.
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    for net in args.nets:
        print(f"[{backend}] {net}", flush=True)
        if backend == "tensorflow":
            entry = measure_steps(net, args, [("tf_graph", False), ("xla", True)])
            with tempfile.TemporaryDirectory() as work_dir:
                files, notes = measure_files(net, args, work_dir)
            entry.update(files)
            result["nets"][net] = {"runtimes": entry, "models": notes}
        else:
            entry = measure_steps(net, args, [(backend, "auto")])
            result["nets"][net] = {"runtimes": entry}
            if backend == "jax":
                result["nets"][net]["xla_cpu_library_fusions"] = xla_library_fusions(net, args)
    Path(args.partial).write_text(json.dumps(result, indent=2) + "\n")


# === The driver ===


def default_python(backend):
    venv = ROOT / {"jax": ".venv-jax", "torch": ".venv-torch"}[backend] / "bin" / "python"
    return str(venv) if venv.exists() else None


def run_worker(backend, python, args, folder):
    partial = Path(folder) / f"{backend}.json"
    command = [
        python,
        "-m",
        "benchmarks.runtime_overhead",
        "--worker",
        "--partial",
        str(partial),
        *worker_flags(args),
    ]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if backend == "jax":
        env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    print(f"=== {backend} ({python})", flush=True)
    completed = subprocess.run(command, env=env)
    if completed.returncode != 0:
        return {"not_measured": f"the {backend} worker failed (exit {completed.returncode})"}
    return json.loads(partial.read_text())


def worker_flags(args):
    flags = [
        "--nets",
        *args.nets,
        "--blocks",
        *args.blocks,
        "--rounds",
        str(args.rounds),
        "--file-rounds",
        str(args.file_rounds),
        "--warmup",
        str(args.warmup),
        "--batch-size",
        str(args.batch_size),
        "--mobilenet-batch",
        str(args.mobilenet_batch),
        "--calibration",
        str(args.calibration),
        "--threads",
        str(args.threads),
    ]
    return flags


def ratios(results):
    """`{net: {runtime: {block: {"ratio", "ratio_median"}}}}` from the backends' timings."""
    table = {}
    for backend, outcome in results["backends"].items():
        for net, entry in outcome.get("nets", {}).items():
            for runtime, models in entry["runtimes"].items():
                plain = models["plain"]
                table.setdefault(net, {})[runtime] = {
                    block: {
                        "ratio": round(times["p20_ms"] / plain["p20_ms"], 3),
                        "ratio_median": round(times["median_ms"] / plain["median_ms"], 3),
                    }
                    for block, times in models.items()
                    if block != "plain"
                }
    return table


def se_relative(table):
    """CC's overhead as a multiple of SE's, `(CC - 1) / (SE - 1)`, per net and runtime."""
    out = {}
    for net, runtimes in table.items():
        for runtime, blocks in runtimes.items():
            if "se" not in blocks:
                continue
            se = blocks["se"]["ratio"] - 1
            for cc in ("cc_reduced", "cc_full"):
                if cc in blocks:
                    value = (blocks[cc]["ratio"] - 1) / se if se > 0.005 else None
                    out.setdefault(net, {}).setdefault(cc, {})[runtime] = (
                        None if value is None else round(value, 2)
                    )
    return out


def markdown(results):
    lines = []
    for net, runtimes in results["ratios"].items():
        names = [r for backend in RUNTIMES.values() for r in backend if r in runtimes]
        lines += [f"\n**{net}** (block / plain, p20 of interleaved rounds)\n"]
        lines += ["| block | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        blocks = list(next(iter(runtimes.values())))
        for block in blocks:
            cells = [f"{runtimes[r][block]['ratio']:.2f}x" for r in names]
            lines.append(f"| {block} | " + " | ".join(cells) + " |")
        relative = results["se_relative"].get(net, {})
        for cc, values in relative.items():
            cells = ["–" if values.get(r) is None else f"{values[r]:.1f}" for r in names]
            lines.append(f"| {cc} overhead / SE's | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    nets = list(results["ratios"])
    figure, axes = plt.subplots(len(nets), 1, figsize=(11, 3.6 * len(nets)), squeeze=False)
    for axis, net in zip(axes[:, 0], nets):
        runtimes = results["ratios"][net]
        names = [r for backend in RUNTIMES.values() for r in backend if r in runtimes]
        blocks = list(next(iter(runtimes.values())))
        width = 0.8 / len(blocks)
        for i, block in enumerate(blocks):
            values = [runtimes[r][block]["ratio"] for r in names]
            axis.bar(np.arange(len(names)) + i * width, values, width, label=block)
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
        axis.set_xticklabels(names, rotation=20, ha="right")
        axis.set_ylabel("x the plain net")
        axis.set_title(f"{net}: time with the block / without (lower is cheaper)")
        axis.legend(ncol=len(blocks), fontsize=8)
    cpu = results["backends"]["tensorflow"].get("machine", {}).get("cpu", "?")
    figure.suptitle(f"Block overhead per runtime, measured on {cpu}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    parser.add_argument("--blocks", nargs="+", default=list(BLOCKS), choices=BLOCKS)
    parser.add_argument("--rounds", type=int, default=15, help="rounds of train/inference steps")
    parser.add_argument("--file-rounds", type=int, default=60, help="rounds of the batch-1 files")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="vgg's train/inference batch")
    parser.add_argument("--mobilenet-batch", type=int, default=8)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jax-python", default=None)
    parser.add_argument("--torch-python", default=None)
    parser.add_argument("--backends", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES))
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds, vgg only")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--chart", type=Path, default=CHART)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--partial", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.file_rounds, args.warmup, args.nets = 2, 3, 1, ["vgg"]
        args.batch_size, args.calibration = 4, 8
    if args.worker:
        return worker(args)
    pythons = {
        "tensorflow": sys.executable,
        "jax": args.jax_python or default_python("jax"),
        "torch": args.torch_python or default_python("torch"),
    }
    results = {"backends": {}, "settings": vars(args) | {"output": str(args.output)}}
    results["settings"].pop("chart")
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends:
            if pythons[backend] is None:
                reason = f"no {backend} environment: pass --{backend}-python"
                print(f"=== {backend}: not measured ({reason})", flush=True)
                results["backends"][backend] = {"not_measured": reason}
                continue
            results["backends"][backend] = run_worker(backend, pythons[backend], args, folder)
    if "nets" not in results["backends"].get("tensorflow", {}):
        sys.exit("runtime_overhead: the TensorFlow worker gave no result")
    results["ratios"] = ratios(results)
    results["se_relative"] = se_relative(results["ratios"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    chart(results, args.chart)
    print(markdown(results))
    print(f"\nwrote {args.output} and {args.chart}")


if __name__ == "__main__":
    main()
