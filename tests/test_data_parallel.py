"""`memblocks train --strategy data-parallel` across JAX processes on localhost.

Every process is the installed `memblocks` command in its own interpreter,
as a user (or Slurm) starts it; the reference is a single-process run of the
same recipe with `--strategy none`. The net is the CC paper's VGG-like one
with CC after every convolution.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("jax")

MEMBLOCKS = str(Path(sys.executable).with_name("memblocks"))
ENV = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
RECIPE = [
    "train",
    "--recipe",
    "digits",
    "--batch-size",
    "32",
    "--set",
    "image_size=16",
    "--model-args",
    '{"dataset": "cifar10", "width": 2, "blocks": {"block": "cc", "after": "conv"}}',
]


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, output_dir, process_id, port, *extra):
    command = [MEMBLOCKS, *RECIPE, *args, "--output-dir", str(output_dir)]
    command += ["--strategy", "data-parallel", "--coordinator", f"127.0.0.1:{port}"]
    command += ["--num-processes", "2", "--process-id", str(process_id), *extra]
    return subprocess.Popen(
        command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _run_pair(args, output_dir, timeout=400):
    port = _port()
    processes = [_start(args, output_dir, i, port) for i in (1, 0)][::-1]
    try:
        return [(p.wait(timeout=timeout), *p.communicate()) for p in processes]
    finally:
        for p in processes:
            p.kill()


def _single(args, output_dir):
    result = subprocess.run(
        [MEMBLOCKS, *RECIPE, *args, "--output-dir", str(output_dir)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _history(run):
    with open(run / "seed_0" / "history.csv") as f:
        return list(csv.DictReader(f))


def _results(run):
    return json.loads((run / "seed_0" / "results.json").read_text())


def _assert_same_run(ours, reference):
    ours_rows, reference_rows = _history(ours), _history(reference)
    assert len(ours_rows) == len(reference_rows)
    for row, expected in zip(ours_rows, reference_rows):
        for key in expected:
            assert float(row[key]) == pytest.approx(float(expected[key]), rel=1e-5, abs=1e-6)
    for key, value in _results(reference)["test"].items():
        assert _results(ours)["test"][key] == pytest.approx(value, rel=1e-5, abs=1e-6)


def test_two_processes_train_as_one_and_process_0_alone_writes(tmp_path):
    args = ["--epochs", "2", "--max-steps-per-epoch", "4"]
    _single(args, tmp_path / "one")
    (code0, out0, err0), (code1, out1, err1) = _run_pair(args, tmp_path / "two")
    assert code0 == 0, err0[-3000:]
    assert code1 == 0, err1[-3000:]
    _assert_same_run(tmp_path / "two", tmp_path / "one")
    results = _results(tmp_path / "two")
    assert (results["processes"], results["replicas"], results["backend"]) == (2, 2, "jax")
    # Process 0 reports (with its progress); process 1 says where the results are.
    assert "best model:" in out0 and "val_accuracy" in out0
    assert f"process 1: done; process 0 wrote the results to {tmp_path / 'two'}" in out1
    assert "Epoch" not in out1
    assert "process 1 of 2: waiting up to 300 s for every process" in err1


def test_an_error_of_process_0_stops_the_other_in_one_line(tmp_path):
    run = tmp_path / "run"
    (run / "seed_0").mkdir(parents=True)
    (run / "seed_0" / "results.json").write_text("my own notes\n")  # a file it did not write
    (code0, _, err0), (code1, _, err1) = _run_pair(["--epochs", "1"], run, timeout=200)
    assert (code0, code1) == (2, 2), (err0[-2000:], err1[-2000:])
    assert "memblocks: error:" in err0 and "Traceback" not in err0
    assert "process 0 stopped the run before training" in err1
    assert "Traceback" not in err1
    assert (run / "seed_0" / "results.json").read_text() == "my own notes\n"


def test_a_missing_process_ends_in_one_line_within_the_peer_timeout(tmp_path):
    start = time.monotonic()
    process = _start(["--epochs", "1"], tmp_path / "run", 0, _port(), "--peer-timeout", "5")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert time.monotonic() - start < 60
    lines = [line for line in err.splitlines() if line.startswith("memblocks:")]
    assert "not every process of the run started within --peer-timeout 5 s" in lines[-1], err
    assert "Traceback" not in err and "Check failure" not in err
    assert not (tmp_path / "run").exists()  # nothing written before every process joined


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--strategy", "data-parallel"], "trains on the JAX backend"),
        (["--num-processes", "2"], "add --strategy data-parallel"),
    ],
)
def test_what_cannot_run_is_refused_before_anything_starts(tmp_path, argv, says):
    result = subprocess.run(
        [MEMBLOCKS, *RECIPE, "--output-dir", str(tmp_path / "run"), *argv],
        env={**ENV, "KERAS_BACKEND": "tensorflow"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.large
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_process_ends_both_and_the_same_commands_resume(tmp_path, how):
    args = ["--epochs", "4", "--max-steps-per-epoch", "10"]
    _single(args, tmp_path / "uninterrupted")
    run, port = tmp_path / "run", _port()
    processes = [_start(args, run, i, port) for i in (0, 1)]
    try:
        history = run / "seed_0" / "history.csv"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # two epochs done
            if history.exists() and len(history.read_text().splitlines()) >= 3:
                break
            time.sleep(0.2)
        stopped = time.monotonic()
        processes[0].send_signal(how)
        codes = [p.wait(timeout=30) for p in processes]
        assert time.monotonic() - stopped < 10 + 5
        expected = 128 + signal.SIGTERM if how == signal.SIGTERM else -signal.SIGKILL
        assert codes == [expected, 2]
        err1 = processes[1].communicate()[1]
        assert "another process of the run stopped or cannot be reached" in err1
        assert "Traceback" not in err1
    finally:
        for p in processes:
            p.kill()
    (code0, _, err0), (code1, _, _) = _run_pair(args, run)
    assert (code0, code1) == (0, 0), err0[-3000:]
    _assert_same_run(run, tmp_path / "uninterrupted")
    # The same commands again: the finished seed is skipped by both, which end at once.
    (code0, out0, _), (code1, out1, _) = _run_pair(args, run, timeout=200)
    assert (code0, code1) == (0, 0)
    assert "already finished, not trained again" in out0


@pytest.mark.large
def test_one_process_on_two_host_devices_trains_as_one_device(tmp_path):
    args = ["--epochs", "2", "--max-steps-per-epoch", "4"]
    _single(args, tmp_path / "one")
    result = subprocess.run(
        [MEMBLOCKS, *RECIPE, *args, "--strategy", "data-parallel"]
        + ["--output-dir", str(tmp_path / "dp")],
        env={**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_same_run(tmp_path / "dp", tmp_path / "one")
    assert (_results(tmp_path / "dp")["replicas"], _results(tmp_path / "dp")["processes"]) == (2, 1)
