import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script, *args):
    """Runs `benchmarks/<script>` in its own process as a user would
    (`python -m benchmarks.<name>`); its completed process, after checking
    that it exited 0."""
    module = "benchmarks." + script.removesuffix(".py")
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_block_overhead_benchmark_runs(tmp_path):
    # A tiny run so the script cannot rot; the real numbers come from
    # `make benchmark`.
    output = tmp_path / "overhead.json"
    result = run_benchmark(
        "block_overhead.py",
        "--batch-size",
        "4",
        "--width",
        "4",
        "--repeats",
        "2",
        "--warmup",
        "1",
        "--modes",
        "graph",
        "--models",
        "plain",
        "cc_reduced",
        "cc_reduced (map recomputed in backward)",
        "sr_P10_after_stage3",
        "--output",
        str(output),
    )
    results = json.loads(output.read_text())
    graph = results["modes"]["graph"]
    assert set(graph) == {
        "plain",
        "cc_reduced",
        "cc_reduced (map recomputed in backward)",
        "sr_P10_after_stage3",
    }
    assert graph["plain"]["train"]["ratio_p20"] == 1.0
    for entry in graph.values():
        assert entry["train"]["median_ms"] > 0 and entry["inference"]["median_ms"] > 0
    assert "| cc_reduced |" in result.stdout


def test_cc_block_parts_benchmark_runs(tmp_path):
    # A tiny run so the script cannot rot: every part timed, the shares
    # computed from them; the real numbers come from `make benchmark`.
    output = tmp_path / "parts.json"
    result = run_benchmark(
        "cc_block_parts.py",
        "--net",
        "demo",
        "--batch-size",
        "2",
        "--maps",
        "2",
        "--repeats",
        "2",
        "--modes",
        "graph",
        "--output",
        str(output),
    )
    results = json.loads(output.read_text())
    assert results["machine"]["cpu"] and results["batch_size"] == 2
    rows = results["modes"]["graph"]
    assert [row["shape"] for row in rows] == [[2, 32, 32, 16], [2, 16, 16, 32]]
    for row in rows:
        for kind in ("inference", "train"):
            entry = row[kind]
            assert set(entry["median_ms"]) == {"block", "coefficients", "floor", "empty"}
            assert all(ms > 0 for ms in entry["median_ms"].values())
            assert entry["coefficient_share"] > 0 and entry["block_in_floors"] > 0
    assert "coefficient share" in result.stdout


def test_parameter_table_is_what_the_builders_give(tmp_path):
    # The README quotes benchmarks/results/parameter_table.json.
    output = tmp_path / "table.json"
    run_benchmark("parameter_table.py", "--output", str(output))
    committed = json.loads((ROOT / "benchmarks/results/parameter_table.json").read_text())
    assert json.loads(output.read_text()) == committed


def test_input_pipeline_benchmark_runs(tmp_path):
    output = tmp_path / "pipeline.json"
    run_benchmark(
        "input_pipeline.py",
        "--examples",
        "64",
        "--batch-size",
        "16",
        "--epochs",
        "1",
        "--steps",
        "2",
        "--width",
        "2",
        "--output",
        str(output),
    )
    results = json.loads(output.read_text())
    assert results["pipeline_images_per_second"] > 0 and results["train_step_images_per_second"] > 0


def test_export_latency_benchmark_runs(tmp_path):
    output = tmp_path / "latency.json"
    result = run_benchmark(
        "export_latency.py",
        "--models",
        "vgg_like",
        "vgg_like+sr",
        "--rounds",
        "2",
        "--warmup",
        "1",
        "--calibration",
        "8",
        "--output",
        str(output),
    )
    results = json.loads(output.read_text())
    entry = results["models"]["vgg_like+sr"]
    assert set(entry["latency_ms"]) == {"keras", "tflite_float32", "tflite_int8", "onnx"}
    assert set(entry["ratio_vs_plain"]) == set(entry["latency_ms"])
    assert entry["parity"]["onnx"]["top1_agreement"] == 1.0
    partitions = entry["graph_ops"]["xnnpack_partitions"]
    assert set(partitions) == {"tflite_float32", "tflite_int8"}
    assert all(count >= 1 for count in partitions.values())
    assert "| vgg_like+sr |" in result.stdout


def test_the_performance_page_quotes_the_committed_export_latency():
    results = json.loads((ROOT / "benchmarks/results/export_latency.json").read_text())
    page = (ROOT / "docs/performance.md").read_text()
    for name, entry in results["models"].items():
        cell = f"{entry['latency_ms']['tflite_float32']:.2f}"
        if "ratio_vs_plain" in entry:
            cell += f" ({entry['ratio_vs_plain']['tflite_float32']:.2f}x)"
        assert f"| {name} |" in page and cell in page, name


def test_runtime_overhead_benchmark_runs(tmp_path):
    # Two blocks, two rounds, TensorFlow's worker only: the script's wiring (the
    # worker process, the steps, the verified exports, the profiles, the table,
    # the chart); `make benchmark` runs every backend and block.
    output, chart = tmp_path / "runtime.json", tmp_path / "runtime.png"
    result = run_benchmark(
        "runtime_overhead.py",
        "--quick",
        "--backends",
        "tensorflow",
        "--blocks",
        "se",
        "cc_reduced",
        "--output",
        output,
        "--chart",
        chart,
    )
    results = json.loads(output.read_text())
    ratios = results["ratios"]["vgg"]
    assert set(ratios) == {
        "tf_graph_train",
        "tf_graph_inference",
        "xla_train",
        "xla_inference",
        "tflite_float32",
        "tflite_int8",
        "onnxruntime",
    }
    assert all(set(blocks) == {"se", "cc_reduced"} for blocks in ratios.values())
    models = results["backends"]["tensorflow"]["nets"]["vgg"]["models"]
    assert models["cc_reduced"]["onnxruntime_profile_ms"]  # ONNX Runtime's own profile
    assert results["backends"]["tensorflow"]["machine"]["cpu"]
    assert chart.stat().st_size > 0 and "| cc_reduced overhead / SE's |" in result.stdout


def test_the_docs_quote_the_committed_runtime_overhead():
    """The performance page and the README show the committed result file's ratios."""
    results = json.loads((ROOT / "benchmarks/results/runtime_overhead.json").read_text())
    page = (ROOT / "docs/performance.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for net, runtimes in results["ratios"].items():
        for runtime, blocks in runtimes.items():
            for block, ratio in blocks.items():
                assert f"{ratio['ratio']:.2f}x" in page, (net, runtime, block)
    cpu = results["backends"]["tensorflow"]["machine"]["cpu"]
    assert cpu in page and "2-core AMD EPYC" in readme
    vgg = results["ratios"]["vgg"]
    for runtime in ("tflite_float32", "onnxruntime"):
        for block in ("se", "cc_reduced"):
            assert f"{vgg[runtime][block]['ratio']:.2f}x" in readme, (runtime, block)


def test_block_comparison_benchmark_runs(tmp_path):
    # One epoch, one seed, two blocks: the script's wiring (training, both
    # exports, the interleaved timing, the table and the figure); the real
    # numbers come from its default run.
    output, figure = tmp_path / "comparison.json", tmp_path / "comparison.png"
    result = run_benchmark(
        "block_comparison.py",
        "--seeds",
        "0",
        "--epochs",
        "1",
        "--blocks",
        "none",
        "CC reduced",
        "--rounds",
        "2",
        "--work-dir",
        str(tmp_path / "runs"),
        "--output",
        str(output),
        "--figure",
        str(figure),
    )
    blocks = json.loads(output.read_text())["blocks"]
    assert list(blocks) == ["none", "CC reduced"]
    assert blocks["none"]["added_parameters"] == 0 and blocks["none"]["train_step_ratio"] == 1.0
    assert blocks["CC reduced"]["added_parameters"] > 0
    for entry in blocks.values():
        assert 0.0 <= entry["int8_top1_agreement"] <= 1.0  # CC's int8 export works
        assert entry["float_parity"]["top1_agreement"] == 1.0
    assert "| CC reduced |" in result.stdout and figure.stat().st_size > 0


def test_block_overhead_compares_the_same_function():
    # The side-by-side row of the previous backward must train the same
    # function: same outputs and gradients as the kept-map backward.
    import numpy as np
    import tensorflow as tf

    from benchmarks import block_overhead

    kept = block_overhead.cifar100_vgg_like(width=4, block_variant="reduced")
    recomputed = block_overhead.cifar100_vgg_like(
        width=4, block_variant="reduced", map_recomputed=True
    )
    weights = [w + 0.1 for w in kept.get_weights()]  # non-identity blocks
    kept.set_weights(weights)
    recomputed.set_weights(weights)
    assert any(
        isinstance(layer._bilinear_excitation, block_overhead.MapRecomputedInBackward)
        for layer in recomputed.layers
        if hasattr(layer, "_bilinear_excitation")
    )
    x = tf.constant(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32))
    results = []
    for model in (kept, recomputed):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=True) ** 2)
        results.append([loss, *tape.gradient(loss, model.trainable_variables)])
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_cc_formulations_benchmark_runs(tmp_path):
    output = tmp_path / "formulations.json"
    run_benchmark("cc_formulations.py", "--quick", "--output", output)
    results = json.loads(output.read_text())
    assert results["machine"]["backend"] == "tensorflow" and results["quick"]
    runtimes = {(row["runtime"], row["batch"]) for row in results["rows"]}
    assert runtimes == {(r, b) for r in ("keras (tensorflow)", "onnxruntime") for b in (1, 8)}
    assert all(row["ratio_q10"] > 0 for row in results["rows"])
    # The committed numbers the Performance page quotes: both forms, full size.
    committed = json.loads((ROOT / "benchmarks/results/cc_formulations.json").read_text())
    assert not committed["quick"] and "width 32" in committed["net"]


def test_the_block_choice_tables_are_the_results_files():
    # The README's and the Reproduction page's "which block, at what price"
    # tables are `benchmarks.block_choice`'s output from the committed results:
    # a number in them that no results file holds fails here.
    from benchmarks import block_choice

    for form in ("short", "full"):
        assert block_choice.shown(form) == block_choice.table(short=form == "short"), (
            f"{block_choice.PAGES[form]}: run python -m benchmarks.block_choice --write"
        )
    rows = block_choice.table().splitlines()[2:]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == [r[0] for r in block_choice.ROWS]
