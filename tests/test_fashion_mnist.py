"""Fashion-MNIST offline: Keras' loader on Debian's files, the recipe through the
installed command, the one line when the files are nowhere, the studies' grids.

The files come from Debian's `dataset-fashion-mnist` (`make data` installs it where
apt-get runs as root). Elsewhere these tests skip, saying so; under CI=true a
missing dataset fails the run instead.
"""

import json
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from keras_memblocks.data import DatasetNotFoundError
from keras_memblocks.data import fashion_mnist
from tests.test_faults import memblocks

REPOSITORY = Path(__file__).parent.parent


@pytest.fixture
def debian_files():
    if fashion_mnist._missing(fashion_mnist.DEBIAN_DIR):
        reason = (
            f"Fashion-MNIST is not in {fashion_mnist.DEBIAN_DIR}: "
            "`apt-get install dataset-fashion-mnist` (make data does it as root)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return fashion_mnist.DEBIAN_DIR


LOAD = """
from keras_memblocks.data import load_fashion_mnist
(x_train, y_train), (x_test, y_test) = load_fashion_mnist(channels=3)
assert x_train.shape == (60000, 28, 28, 3) and x_test.shape == (10000, 28, 28, 3)
assert x_train.dtype == "float32" and 0.0 <= x_train.min() and x_train.max() == 1.0
# The published class balance: 6,000 training and 1,000 test images of each class.
assert sorted(set(y_train.tolist())) == list(range(10))
assert (y_test == 9).sum() == 1000 and (y_train == 0).sum() == 6000
"""


def test_keras_loader_reads_the_debian_files_offline(debian_files, tmp_path):
    # A fresh process: Keras reads KERAS_HOME once, when it is imported.
    result = subprocess.run(
        [sys.executable, "-c", LOAD],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Downloading" not in result.stdout  # read offline, from Debian's files
    assert sorted(p.name for p in (tmp_path / "datasets" / "fashion-mnist").iterdir()) == sorted(
        fashion_mnist.FILES
    )


def test_missing_files_with_no_network_name_both_ways_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "not-installed")

    def offline():
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(fashion_mnist.keras.datasets.fashion_mnist, "load_data", offline)
    monkeypatch.setattr(fashion_mnist.provide_files, "__defaults__", (tmp_path / "none",))
    with pytest.raises(DatasetNotFoundError) as error:
        fashion_mnist.load_fashion_mnist()
    message = str(error.value)
    assert "\n" not in message
    assert "apt-get install dataset-fashion-mnist" in message and "internet" in message


def test_memblocks_train_on_fashion_mnist_offline(debian_files, tmp_path):
    words = ["train", "--recipe", "cc-fashion-mnist", "--epochs", "1"]
    words += ["--max-steps-per-epoch", "3", "--model-args", '{"dataset": "mnist", "width": 1}']
    memblocks(*words, "--output-dir", "r", cwd=tmp_path, env={"KERAS_HOME": str(tmp_path)})
    results = json.loads((tmp_path / "r" / "seed_0" / "results.json").read_text())
    assert results["config"]["dataset"] == "fashion_mnist" and 0 <= results["test"]["accuracy"]


@pytest.mark.runs_first
@pytest.mark.parametrize("study", ["cc", pytest.param("sr", marks=pytest.mark.large)])
def test_the_studies_quick_form_builds_every_cell(debian_files, tmp_path, study):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.fashion_mnist_study", study, "--quick"]
        + ["--runs", str(tmp_path / "runs")],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "KERAS_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the grid's models all build" in result.stdout


def test_the_analyses_quick_form_writes_every_figure_and_number(tmp_path):
    # Untrained models of the studies' cells on generated images: the script
    # cannot rot; the committed numbers come from the trained models.
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.fashion_mnist_analyses", "--quick"]
        + ["--output", str(tmp_path / "analyses.json"), "--figures", str(tmp_path)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "analyses.json").read_text())
    assert {"machine", "cc", "sr"} <= set(record)
    assert len(record["cc"]["class_differences"]) == 10 and record["cc"]["layers"]
    assert len(record["sr"]["memory_usage_mean"]) == 10
    assert [a["model"].split("/")[1] for a in record["sr"]["removal"]] == ["sr", "d2d_sr", "se_sr"]
    assert all(a["relative_addition"] >= 0 for a in record["sr"]["removal"])
    names = {path.name for path in tmp_path.glob("*.png")}
    assert names == {
        "fashion_mnist_cc_tilt.png",
        "fashion_mnist_cc_class_differences.png",
        "fashion_mnist_sr_memory_usage.png",
        "fashion_mnist_sr_removal.png",
    }


def test_collected_records_and_paired_differences():
    from benchmarks.fashion_mnist_study import interval
    from benchmarks.fashion_mnist_study import summarise

    def run(cell, block, seed, accuracy):
        return {
            "cell": cell,
            "block": block,
            "variant": None,
            "width": 4,
            "split": "normal",
            "seed": seed,
            "parameters": 10,
            "test_accuracy": accuracy,
        }

    records = [
        run("normal_standard_w4", "standard", s, a) for s, a in [(0, 0.80), (1, 0.82), (2, 0.84)]
    ]
    records += [
        run("normal_reduced_w4", "reduced", s, a) for s, a in [(0, 0.81), (1, 0.83), (2, 0.85)]
    ]
    cells = {c["cell"]: c for c in summarise("cc", records)}
    paired = cells["normal_reduced_w4"]["minus_plain"]
    # Each seed gains exactly 1 point: the paired interval is [1, 1], "better".
    assert paired["mean"] == pytest.approx(1.0) and paired["verdict"] == "better"
    mean, sd, low, high = interval([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0) and low == pytest.approx(2 - 4.302653 / 3**0.5, 1e-5)


def test_step_times_pair_each_cell_with_the_plain_net_of_its_width(monkeypatch):
    from benchmarks import fashion_mnist_study as study
    from keras_memblocks.training import reproduction

    width_1 = [row for row in reproduction.grid("fmnist-cc") if row[0].endswith("_w1")]
    monkeypatch.setattr(reproduction, "grid", lambda name: width_1)
    measured = study.step_times("cc", quick=True)
    # The swapped split trains the normal split's models: timed once, under the normal name.
    assert sorted(measured) == sorted(label for label, _, _ in width_1 if "normal_" in label)
    assert measured["normal_standard_w1"]["ratio_median"] == 1.0
    assert all(entry["p20_ms"] > 0 and entry["ratio_p20"] > 0 for entry in measured.values())

    records = [
        {"cell": cell, "block": cell.split("_")[1], "variant": None, "width": 1, "split": split}
        | {"seed": 0, "parameters": 10, "test_accuracy": 0.5}
        for split in ("normal", "swapped")
        for cell in (f"{split}_standard_w1", f"{split}_reduced_w1")
    ]
    cells = {c["cell"]: c for c in study.summarise("cc", records, measured)}
    assert cells["swapped_reduced_w1"]["train_step"] == measured["normal_reduced_w1"]
    ratio = measured["normal_reduced_w1"]["ratio_median"]
    assert f"| {ratio:.2f}x |" in study.markdown_table("cc", list(cells.values()))


def test_the_sr_study_also_compares_each_sr_row_with_the_same_net_without_sr():
    from benchmarks.fashion_mnist_study import markdown_table
    from benchmarks.fashion_mnist_study import summarise

    accuracy = {"plain": 0.90, "d2d": 0.91, "d2d_sr": 0.93}
    records = [
        {"cell": cell, "block": cell, "variant": None, "width": 8, "split": "normal"}
        | {"seed": seed, "parameters": 10, "test_accuracy": value + seed / 100}
        for cell, value in accuracy.items()
        for seed in (0, 1, 2)
    ]
    cells = {c["cell"]: c for c in summarise("sr", records)}
    # +dropout2d+SR is 3 points above plain, 2 above +dropout2d: the paper's comparison.
    assert cells["d2d_sr"]["minus_plain"]["mean"] == pytest.approx(3.0)
    assert cells["d2d_sr"]["minus_without_sr"]["mean"] == pytest.approx(2.0)
    assert cells["d2d_sr"]["minus_without_sr"]["without"] == "d2d"
    assert "minus_without_sr" not in cells["d2d"]
    assert "| 2.00 [2.00, 2.00] | better |" in markdown_table("sr", list(cells.values()))
