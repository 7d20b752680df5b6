"""Faults a user meets, each through `memblocks` in processes of its own.

Two runs racing for one directory, runs killed at every epoch boundary and
resumed, a diverged run and NaN data, a re-run under another config, a
directory ruined by an older version, exports killed half way, NaN
calibration images, folders that cannot be written. Each test asserts the
one line and the exit code, and that no result was lost or replaced.

The faults are injected by `tests/fault_hooks.py` (the command's own entry
point with a hook patched in); everything else runs the installed command.
"""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

MEMBLOCKS = str(Path(sys.executable).with_name("memblocks"))
HOOKED = [sys.executable, str(Path(__file__).with_name("fault_hooks.py"))]
# The digits recipe, small: every run here takes seconds.
SMALL = [
    "--recipe",
    "digits",
    "--set",
    "image_size=16",
    "--batch-size",
    "32",
    "--model-args",
    '{"dataset": "cifar10", "width": 2}',
]
THREE_EPOCHS = ["train", *SMALL, "--epochs", "3", "--learning-rate", "0.02"]


def environment(**extra):
    # As a user's shell has it: the suite's TF_CPP_MIN_LOG_LEVEL would stop the command
    # from quieting TensorFlow's start-up lines itself.
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return {**env, "KERAS_BACKEND": "tensorflow", "PYTHONUNBUFFERED": "1", **extra}


def memblocks(*words, cwd, expect=0, hooks=None, prefix=(), timeout=600, env=None):
    """Runs `memblocks` (with `hooks`: through fault_hooks.py) and checks its exit code;
    `env`: more environment variables."""
    command = [*prefix, *(HOOKED if hooks else [MEMBLOCKS]), *words]
    result = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(**(hooks or {}), **(env or {})),
    )
    assert result.returncode == expect, (
        f"{words}\nexit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def one_error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("memblocks: error: "), result.stderr[-3000:]
    return lines[0]


def history_rows(run):
    text = (run / "history.csv").read_text()
    assert text.count("epoch,") == 1, text  # one header: nobody else wrote into it
    return list(csv.DictReader(text.splitlines()))


def leftovers(parent):
    return sorted(p.name for p in Path(parent).iterdir() if ".partial-" in p.name)


# === Training ===


@pytest.mark.runs_first
def test_a_second_run_on_the_same_directory_is_refused_and_the_first_one_finishes(tmp_path):
    words = ["train", *SMALL, "--epochs", "2", "--output-dir", "race"]
    release = tmp_path / "release"
    first = subprocess.Popen(
        [*HOOKED, *words],
        cwd=tmp_path,
        env=environment(FAULT_HOLD_UNTIL=str(release)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while not Path(f"{release}.held").exists() and first.poll() is None:
            assert time.monotonic() < deadline, "the first run never started training"
            time.sleep(0.05)
        second = memblocks(*words, cwd=tmp_path, expect=2)  # the installed command
        line = one_error_line(second)
        assert f"race/seed_0 is in use by another run (pid {first.pid} on " in line
        release.touch()
        _, stderr = first.communicate(timeout=600)
    finally:
        release.touch()
        first.kill() if first.poll() is None else None
    assert first.returncode == 0, stderr.decode()[-3000:]
    run = tmp_path / "race" / "seed_0"
    assert len(history_rows(run)) == 2
    assert json.loads((run / "results.json").read_text())["epochs_completed"] == 2
    assert not (run / "run.lock").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid belongs to no process now
    run = tmp_path / "stale" / "seed_0"
    run.mkdir(parents=True)
    (run / "run.lock").write_text(f"{gone.pid} {socket.gethostname()}\n")
    memblocks("train", *SMALL, "--epochs", "1", "--output-dir", "stale", cwd=tmp_path)
    assert (run / "results.json").exists() and not (run / "run.lock").exists()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The three-epoch run, never stopped: what every resumed run must end as."""
    cwd = tmp_path_factory.mktemp("uninterrupted")
    memblocks(*THREE_EPOCHS, "--output-dir", "r", cwd=cwd)
    return cwd / "r" / "seed_0"


def _resumes_to_the_uninterrupted_result(tmp_path, hooks, uninterrupted):
    memblocks(*THREE_EPOCHS, "--output-dir", "r", cwd=tmp_path, hooks=hooks, expect=-9)
    run = tmp_path / "r" / "seed_0"
    assert not (run / "results.json").exists()
    before = json.loads((run / "best.json").read_text()) if (run / "best.json").exists() else None
    memblocks(*THREE_EPOCHS, "--output-dir", "r", cwd=tmp_path)  # it resumes
    assert history_rows(run) == history_rows(uninterrupted)
    best = json.loads((run / "best.json").read_text())
    reference_best = json.loads((uninterrupted / "best.json").read_text())
    assert (best["best"], best["epoch"]) == (reference_best["best"], reference_best["epoch"])
    if before is not None:
        assert best["best"] >= before["best"]  # never replaced by a worse epoch
    results, reference = (
        json.loads((r / "results.json").read_text()) for r in (run, uninterrupted)
    )
    assert results["test"] == reference["test"] and results["epochs_completed"] == 3
    # Nothing half-written is left, and the backup went with the finished run.
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in uninterrupted.iterdir())


# The points of an epoch where what the run leaves on disk changes, in the order
# they happen (keras_memblocks/training/checkpoints.py): epoch 2's, and "before
# best.keras", which leaves the new model written in full under its temporary name.
EPOCH_2_WRITE_POINTS = [
    pytest.param("after:history.csv:2", marks=pytest.mark.large),
    "after:best.json:2",  # best.json describes a model not yet in place
    "before:best.keras:2",  # the new model written in full, not renamed
    pytest.param("after:best.keras:2", marks=pytest.mark.large),
    "after:epoch-0002.weights.h5:1",  # the epoch counts as done
]


@pytest.mark.runs_first
@pytest.mark.parametrize("kill_at", EPOCH_2_WRITE_POINTS)
def test_a_run_killed_at_any_write_point_resumes_to_the_uninterrupted_result(
    tmp_path, kill_at, uninterrupted
):
    """SIGKILL at each point of epoch 2 where a file changes, then the same command
    again: the same history, the same best epoch and value, the same test accuracy
    as the run that was never stopped (the seeds make it exact), no file left over."""
    _resumes_to_the_uninterrupted_result(tmp_path, {"FAULT_DIE_AT": kill_at}, uninterrupted)


@pytest.mark.large  # the same states as "after:epoch-000N.weights.h5" above
@pytest.mark.parametrize("killed_after", [1, 3])
def test_a_run_killed_at_an_epoch_boundary_resumes_to_the_uninterrupted_result(
    tmp_path, killed_after, uninterrupted
):
    hooks = {"FAULT_DIE_AFTER_EPOCH": str(killed_after)}
    _resumes_to_the_uninterrupted_result(tmp_path, hooks, uninterrupted)


@pytest.mark.large
@pytest.mark.parametrize(
    "kill_at",
    [
        f"{when}:{name}:{count}"
        for name, counts in [
            ("history.csv", (1, 2, 3)),
            # The reference run improves at epochs 1 and 2 only: two saves.
            ("best.json", (1, 2)),
            ("best.keras", (1, 2)),
            ("epoch-0001.weights.h5", (1,)),
            ("epoch-0002.weights.h5", (1,)),
            ("epoch-0003.weights.h5", (1,)),
        ]
        for count in counts
        for when in ("before", "after")
    ],
)
def test_every_write_point_of_every_epoch_resumes(tmp_path, kill_at, uninterrupted):
    _resumes_to_the_uninterrupted_result(tmp_path, {"FAULT_DIE_AT": kill_at}, uninterrupted)


@pytest.mark.runs_first
def test_a_diverged_run_stops_with_one_line_and_keeps_nothing_non_finite(tmp_path):
    words = ["train", *SMALL, "--epochs", "3", "--output-dir", "nan"]
    result = memblocks(*words, "--learning-rate", "1e6", cwd=tmp_path, expect=2)
    line = one_error_line(result)
    assert "Training diverged at epoch 1 of 3: the training loss is nan" in line
    assert "--learning-rate" in line and "--overwrite" in line
    run = tmp_path / "nan" / "seed_0"
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "diverged" and results["diverged"]["epoch"] == 1
    assert len(history_rows(run)) == 1  # stopped at the first non-finite epoch
    assert not (run / "best.keras").exists()  # no NaN model kept
    # Run again unchanged: the same line, nothing trained.
    again = memblocks(*words, "--learning-rate", "1e6", cwd=tmp_path, expect=2)
    assert one_error_line(again) == line
    # A sane learning rate is another config: refused without --overwrite, trained with it.
    changed = memblocks(*words, cwd=tmp_path, expect=2)
    assert "holds a run of another config (differs in: learning_rate)" in one_error_line(changed)
    memblocks(*words, "--overwrite", cwd=tmp_path)
    assert "status" not in json.loads((run / "results.json").read_text())


def test_a_nan_pixel_in_the_data_stops_the_run_at_its_first_epoch(tmp_path):
    words = ["train", *SMALL, "--epochs", "2", "--output-dir", "nan"]
    result = memblocks(*words, cwd=tmp_path, hooks={"FAULT_NAN_PIXEL": "1"}, expect=2)
    line = one_error_line(result)
    assert "Training diverged at epoch 1 of 2: " in line and "look for NaN or inf" in line
    run = tmp_path / "nan" / "seed_0"
    assert json.loads((run / "results.json").read_text())["status"] == "diverged"
    assert not (run / "best.keras").exists()


def test_a_finished_run_is_not_reused_nor_relabelled_under_another_config(tmp_path):
    memblocks("train", *SMALL, "--epochs", "1", "--output-dir", "c", cwd=tmp_path)
    summary = (tmp_path / "c" / "summary.md").read_text()
    results = (tmp_path / "c" / "seed_0" / "results.json").read_text()
    other = ["train", *SMALL[:-1], '{"dataset": "cifar10", "width": 3}', "--epochs", "1"]
    result = memblocks(*other, "--output-dir", "c", cwd=tmp_path, expect=2)
    assert "holds a run of another config (differs in: model_args)" in one_error_line(result)
    assert (tmp_path / "c" / "summary.md").read_text() == summary
    assert (tmp_path / "c" / "seed_0" / "results.json").read_text() == results
    # A run finished by a version that kept its config only in results.json: compared too.
    (tmp_path / "c" / "seed_0" / "config.json").unlink()
    result = memblocks(*other, "--output-dir", "c", cwd=tmp_path, expect=2)
    assert "differs in: model_args" in one_error_line(result)


def test_overwrite_clears_only_a_directory_it_can_prove_it_wrote(tmp_path):
    """What two runs racing left before the lock existed: two headers in the history,
    no results, a backup, a dead run's lock, and no config or marker to show whose
    files they are. --overwrite refuses to clear them (one line, nothing changed); a
    directory that carries the run marker is cleared and trained afresh."""
    run = tmp_path / "ruined" / "seed_0"
    (run / "backup").mkdir(parents=True)
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    (run / "history.csv").write_text("epoch,loss\n0,1.0\nepoch,loss\n0,1.1\n")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (run / "run.lock").write_text(f"{gone.pid} {socket.gethostname()}\n")
    words = ["train", *SMALL, "--epochs", "1", "--output-dir", "ruined"]
    refused = memblocks(*words, "--overwrite", cwd=tmp_path, expect=2)
    assert "which memblocks did not write there" in one_error_line(refused)
    assert (run / "history.csv").read_text().count("epoch,") == 2  # untouched
    (run / ".memblocks-run").write_text('{"written_by": "keras-memblocks", "kind": "run"}')
    memblocks(*words, "--overwrite", cwd=tmp_path)
    assert len(history_rows(run)) == 1
    assert json.loads((run / "results.json").read_text())["epochs_completed"] == 1


# === Export ===


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("trained")
    memblocks("train", *SMALL, "--epochs", "1", "--output-dir", "run", cwd=cwd)
    return cwd / "run" / "seed_0" / "best.keras"


def test_a_killed_export_leaves_no_output_and_the_next_one_cleans_up(tmp_path, trained):
    model = shutil.copy(trained, tmp_path / "model.keras")
    words = ["export", model, "--formats", "saved_model", "onnx", "--output-dir", "out"]
    memblocks(*words, cwd=tmp_path, hooks={"FAULT_DIE_IN_EXPORT": "1"}, expect=-9)
    assert not (tmp_path / "out").exists()
    (partial,) = leftovers(tmp_path)  # the killed export's staging folder, a SavedModel in it
    assert (tmp_path / partial / "saved_model").is_dir()
    memblocks(*words, cwd=tmp_path)
    assert leftovers(tmp_path) == [] and (tmp_path / "out" / "manifest.json").exists()


def test_an_export_killed_while_replacing_an_output_gets_it_back(tmp_path, trained):
    """Killed between moving the old output aside and moving the new one in: the
    next export into the same parent puts the old one back before it starts."""
    model = shutil.copy(trained, tmp_path / "model.keras")
    words = ["export", model, "--formats", "onnx", "--output-dir", "out"]
    memblocks(*words, cwd=tmp_path)
    manifest = (tmp_path / "out" / "manifest.json").read_text()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "out").rename(tmp_path / f".out.replaced-{gone.pid}-0a1b2c3d")
    other = ["export", model, "--formats", "tflite", "--output-dir", "other"]
    memblocks(*other, cwd=tmp_path)
    assert (tmp_path / "out" / "manifest.json").read_text() == manifest
    assert not any(".replaced-" in p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_nan_calibration_images_are_named_in_one_line_and_nothing_is_left(
    tmp_path, trained, quantize
):
    model = shutil.copy(trained, tmp_path / "model.keras")
    images = np.random.default_rng(0).random((16, 16, 16, 3)).astype("float32")
    images[3, 5, 5, 1] = np.nan  # calibration half
    images[12, 0, 0, 0] = np.inf  # parity half
    np.save(tmp_path / "images.npy", images)
    words = ["export", model, "--calibration", "images.npy", "--output-dir", "out"]
    if quantize:
        words += ["--formats", "tflite", "--quantize", quantize]
    line = one_error_line(memblocks(*words, cwd=tmp_path, expect=2))  # not exit 134
    assert "images.npy has NaN or inf in 2 of its 16 images, the first at index 3" in line
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def _without_root_powers():
    """A command prefix under which permissions hold: as root, the same user without
    the capability to override them (a non-root user needs none)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv (util-linux): cannot make a folder unwritable")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


# export's case is `large` (34 s); tests/test_hostile_inputs.py refuses export folders.
@pytest.mark.parametrize("command", ["train", pytest.param("export", marks=pytest.mark.large)])
def test_folders_that_cannot_be_written_get_one_line_before_any_work(tmp_path, trained, command):
    (tmp_path / "a_file").write_text("")
    locked = tmp_path / "read_only"
    locked.mkdir()
    locked.chmod(0o555)
    model = shutil.copy(trained, tmp_path / "model.keras")
    cases = {
        "a_file/run": "a_file is a file, not a directory",
        "read_only/run": "Permission denied",
    }
    for output_dir, reason in cases.items():
        words = ["train", *SMALL, "--epochs", "1"] if command == "train" else ["export", model]
        result = memblocks(
            *words,
            "--output-dir",
            output_dir,
            cwd=tmp_path,
            expect=2,
            prefix=_without_root_powers(),
        )
        line = one_error_line(result)
        assert f"Cannot {command} into {output_dir}" in line and reason in line, line
    assert list(locked.iterdir()) == []
    locked.chmod(0o755)


def test_killed_processes_do_not_hold_staging_folders_of_live_ones(tmp_path, trained):
    """A staging folder whose process is alive (another export in progress) is kept."""
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        busy = tmp_path / f".other.partial-{alive.pid}-xyz"
        busy.mkdir()
        model = shutil.copy(trained, tmp_path / "model.keras")
        memblocks("export", model, "--formats", "onnx", "--output-dir", "out", cwd=tmp_path)
        assert busy.exists()
    finally:
        alive.send_signal(signal.SIGKILL)
        alive.wait()
