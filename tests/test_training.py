import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_memblocks.cli import main as cli_main
from keras_memblocks.training import SGDWithL2
from keras_memblocks.training import build_model
from keras_memblocks.training import get_recipe
from keras_memblocks.training import load_config_file
from keras_memblocks.training import train
from keras_memblocks.training import train_seeds
from keras_memblocks.training.checkpoints import EpochBackup
from keras_memblocks.training.distributed_loop import fit_distributed
from keras_memblocks.training.plan import learning_rate_schedule

pytestmark = pytest.mark.oldest_tensorflow

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "dataset": "cifar10",
    "width": 2,
    "blocks": {"block": "cc", "after": "conv", "variant": "reduced"},
}


def tiny_digits(**overrides):
    settings = dict(model_args=TINY, epochs=2, max_steps_per_epoch=3, image_size=16, batch_size=32)
    return get_recipe("digits").replace(**{**settings, **overrides})


def test_sgd_with_l2_is_pytorch_sgd():
    # torch.optim.SGD(lr, momentum, weight_decay): g += wd*w; buf = m*buf + g; w -= lr*buf
    lr, momentum, wd = 0.1, 0.9, 0.05
    w0 = np.array([1.0, -2.0, 0.5], "float32")
    grads = [np.array(g, "float32") for g in ([0.3, 0.1, -0.2], [0.0, 0.5, 0.1], [-0.4, 0.2, 0.3])]
    variable = keras.Variable(w0.copy())
    optimizer = SGDWithL2(learning_rate=lr, momentum=momentum, l2=wd)
    w, buf = w0.astype("float64"), np.zeros(3)
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
        d = g + wd * w
        buf = momentum * buf + d
        w = w - lr * buf
    np.testing.assert_allclose(np.asarray(variable), w, rtol=1e-5)
    assert SGDWithL2.from_config(optimizer.get_config()).l2 == wd


def test_schedules():
    config = get_recipe("sr-cifar100")
    schedule = learning_rate_schedule(config, steps_per_epoch=10)
    assert float(schedule(599)) == pytest.approx(0.1)
    assert float(schedule(601)) == pytest.approx(0.02)
    assert float(schedule(1700)) == pytest.approx(0.1 * 0.2**3)
    poly = learning_rate_schedule(get_recipe("sr-cityscapes"), steps_per_epoch=10)
    assert float(poly(0)) == pytest.approx(0.01)
    assert float(poly(10 * 215)) == pytest.approx(1e-4)


def test_recipes_are_valid_and_build():
    from keras_memblocks.training.plan import resolve
    from keras_memblocks.training.recipes import RECIPES

    for name, recipe in RECIPES.items():
        run = resolve(recipe)
        model = build_model(run)  # the builder, its blocks, the dataset's shape and classes
        expected = run.dataset.image_shape(recipe, run.channels)
        assert model.inputs[0].shape[1:] == tuple(expected), name
    assert get_recipe("sr-imagenet").milestones == (75, 150, 225, 300, 375)


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["--set", "model=resnet9"],
            "Unknown model 'resnet9'. Valid values for `model`: 'vgg_like'",
        ),
        (["--set", "dataset=svhn"], "Unknown dataset 'svhn'"),
        (
            ["--model", "fcn"],
            "Model 'fcn' is a segmentation model but dataset 'digits' is a "
            "classification dataset: choose a classification model (vgg_like,",
        ),
        (["--set", "epochz=3"], "Unknown recipe field(s) ['epochz']. Valid fields:"),
        (["--set", "schedule=cosine"], "`schedule` must be one of step, poly, constant."),
        (["--set", "jit_compile=yes"], "`jit_compile` must be true, false or 'auto'"),
        (["--set", "learning_rate=abc"], "`learning_rate` must be a number > 0. Received: 'abc'"),
        (["--set", 'learning_rate="0.1"'], "`learning_rate` must be a number > 0. Received: '0.1'"),
        (["--max-steps-per-epoch", "-1"], "`max_steps_per_epoch` must be an integer >= 1, or nu"),
        (["--set", "milestones=[10,5]"], "`milestones` must increase, each epoch once"),
        (["--set", "crop_size=[512]"], "`crop_size` must be [height, width], two integers >= 1"),
        (
            ["--set", "crop_size=[64,64]"],
            "`crop_size` applies to the cityscapes dataset only; dataset 'digits' does not read it",
        ),
        (
            ["--dataset", "cifar10", "--set", "image_size=64"],
            "`image_size` applies to the digits dataset only; dataset 'cifar10' does not read it",
        ),
        (
            [
                "--model-args",
                '{"dataset": "cifar10", "width": 4, "blocks": {"block": "sq", "after": 1}}',
            ],
            "Unknown block 'sq'",
        ),
        (
            [
                "--model-args",
                '{"dataset": "cifar10", "width": 4, "blocks": {"block": "cc", "after": 9}}',
            ],
            "vgg_like places blocks after module numbers 1..4 or 'conv'. Received: after=9",
        ),
        (["--model-args", '{"dataset": "cifar10", "widht": 4}'], "Bad `model_args` for vgg_like"),
        (["--recipe", "sr-cifar100", "--data-dir", "/nonexistent"], "Dataset 'cifar100'"),
    ],
)
def test_bad_configs_fail_before_training(argv, message, capsys, tmp_path):
    start = time.perf_counter()
    assert cli_main(["train", "--output-dir", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "seed_0" / "history.csv").exists()


@pytest.mark.parametrize(
    "argv,value",
    [
        (["--recipe", "sr-cifar200"], "sr-cifar200"),
        (["--model", "resnet9"], "resnet9"),
        (["--dataset", "svhn"], "svhn"),
        (["--strategy", "tpu"], "tpu"),
    ],
)
def test_choices_come_from_the_registries(argv, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["train", *argv])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert f"invalid choice: '{value}'" in error and "Traceback" not in error


def test_config_files(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 7\nmodel_args: {depth: 34}\n")
    (tmp_path / "c.json").write_text(json.dumps({"batch_size": 16}))
    assert load_config_file(tmp_path / "c.yaml") == {"epochs": 7, "model_args": {"depth": 34}}
    assert load_config_file(tmp_path / "c.json") == {"batch_size": 16}
    with pytest.raises(ValueError, match="No config file"):
        load_config_file(tmp_path / "missing.yaml")


def test_each_trainer_step_works_alone(tmp_path):
    from keras_memblocks.training import fitting
    from keras_memblocks.training import plan
    from keras_memblocks.training import seeds

    config = tiny_digits(epochs=1)
    run = plan.resolve(config)
    (train_data, validation_data, test_data), steps = plan.make_datasets(run, seed=0)
    assert steps == 3 and validation_data is not None
    model = build_model(run)
    plan.compile_model(model, run, steps)
    assert type(model.optimizer).__name__ == "AdamW"
    checkpoint_path = tmp_path / "best.keras"
    callbacks, backup, timer = fitting.make_callbacks(run, tmp_path, checkpoint_path)
    assert backup.restore(model) == 0  # nothing to resume
    strategy = tf.distribute.get_strategy()
    fitting.fit(model, config, strategy, train_data, validation_data, steps, callbacks, verbose=0)
    assert len(timer.seconds) == steps and checkpoint_path.exists()
    assert (tmp_path / "backup" / "epoch-0001.weights.h5").exists()
    metrics = fitting.evaluate_checkpoint(checkpoint_path, run, steps, test_data)
    assert set(metrics) == {"loss", "accuracy"} and 0.0 <= metrics["accuracy"] <= 1.0
    results = {"config": config.to_dict(), "test": metrics}
    assert seeds.main_metric(results) == ("accuracy", metrics["accuracy"])


def test_train_writes_model_history_and_results(tmp_path):
    results = train(tiny_digits(), tmp_path, verbose=0)
    assert results["epochs_completed"] == 2
    assert 0.0 <= results["test"]["accuracy"] <= 1.0
    assert (tmp_path / "best.keras").exists() and (tmp_path / "results.json").exists()
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch") and len(history) == 3
    assert results["median_step_ms"] > 0


def test_mixed_precision_and_xla(tmp_path):
    results = train(
        tiny_digits(mixed_precision=True, jit_compile=True, epochs=1), tmp_path, verbose=0
    )
    assert np.isfinite(results["test"]["loss"]) and results["jit_compile"] is True
    assert keras.mixed_precision.global_policy().name == "float32"  # restored


def test_jit_compile_defaults_to_keras_auto(tmp_path):
    # "auto": XLA on a GPU or with JAX; on this TensorFlow CPU Keras picks graph mode.
    assert get_recipe("digits").jit_compile == "auto"
    results = train(tiny_digits(epochs=1), tmp_path, verbose=0)
    assert results["config"]["jit_compile"] == "auto" and results["jit_compile"] is False


def test_seeds_summary(tmp_path, capsys):
    summary = train_seeds(tiny_digits(epochs=1), [0, 1], tmp_path, verbose=0)
    assert summary["seeds"] == [0, 1] and len(summary["values"]) == 2
    assert "±" in (tmp_path / "summary.md").read_text()
    # Finished seeds are kept, said so, and reported as they are (the command's
    # path: tests/test_workflows.py, make test-large).
    best = tmp_path / "seed_0" / "best.keras"
    stamp = best.stat().st_mtime_ns
    again = train_seeds(tiny_digits(epochs=1), [0, 1], tmp_path, verbose=2)
    assert again["values"] == summary["values"] and best.stat().st_mtime_ns == stamp
    said = capsys.readouterr().out
    assert "seed 0: already finished, not trained again" in said and "--overwrite" in said


def _train_command(output_dir, epochs):
    return [
        sys.executable,
        "-m",
        "keras_memblocks.cli",
        "train",
        "--recipe",
        "digits",
        "--epochs",
        str(epochs),
        "--model-args",
        json.dumps(TINY),
        "--set",
        "image_size=16",
        "--output-dir",
        str(output_dir),
    ]


@pytest.mark.large  # 68 s; tests/test_faults.py kills runs at each write point in make test
def test_killed_run_resumes_where_it_stopped(tmp_path):
    epochs = 40
    history = tmp_path / "seed_0" / "history.csv"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        _train_command(tmp_path, epochs),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) >= 3:  # 2 epochs done
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(history.read_text().splitlines()) - 1
    assert 2 <= done_before < epochs

    resumed = subprocess.run(
        _train_command(tmp_path, epochs),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first_epoch = int(resumed.stdout.split("Epoch ")[1].split("/")[0])
    assert first_epoch >= done_before  # resumed (at most the current epoch repeated)
    rows = history.read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(epochs))
    results = json.loads((tmp_path / "seed_0" / "results.json").read_text())
    assert results["epochs_completed"] == epochs


MIRRORED_SCRIPT = """
import tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
import json, sys
from keras_memblocks.training import get_recipe, train
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
print("replicas", strategy.num_replicas_in_sync)
config = get_recipe("digits").replace(model_args=json.loads(sys.argv[2]), epochs=1,
                                      max_steps_per_epoch=2, image_size=16, strategy="mirrored")
results = train(config, sys.argv[1], verbose=0, strategy=strategy)
print("accuracy", results["test"]["accuracy"], "trained on", results["replicas"], "replicas")
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path), json.dumps(TINY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2" in result.stdout and "trained on 2 replicas" in result.stdout


MULTIWORKER_SCRIPT = """
import json, sys
import keras, numpy as np
from keras_memblocks.training import get_recipe, train
config = get_recipe("digits").replace(model_args=json.loads(sys.argv[2]), epochs=2, batch_size=32,
                                      max_steps_per_epoch=3, image_size=16, strategy="multiworker")
results = train(config, sys.argv[1], verbose=0)
print("trained on", results["replicas"], "replicas")
weights = keras.saving.load_model(results["model_path"]).get_weights()
print("checksum", repr(float(sum(np.abs(w).sum() for w in weights))))
"""


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.large  # 25 s; make test starts the strategy in the peer-timeout tests
def test_multiworker_strategy_two_processes_on_localhost(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    MULTIWORKER_SCRIPT,
                    str(tmp_path / f"worker_{index}"),
                    json.dumps(TINY),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300))
    finally:
        for process in processes:
            process.kill()
    checksums = []
    for index, (process, (stdout, stderr)) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, stderr[-3000:]
        assert "trained on 2 replicas" in stdout
        checksums.append(stdout.split("checksum")[1].strip())
        with open(tmp_path / f"worker_{index}" / "history.csv") as history:
            rows = list(csv.DictReader(history))
        assert [row["epoch"] for row in rows] == ["0", "1"]
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    # Synchronous data-parallel training: both workers hold the same model.
    assert checksums[0] == checksums[1]


def test_distributed_loop_trains_like_fit():
    """The loop used for multi-worker runs, checked against Keras' fit on
    one replica: same data, same initial weights, same updates, and the same
    losses with a short last batch (70 = 4 x 16 + 6: each batch's loss counts
    by its size, as in fit)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, 70).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    def compiled():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                keras.layers.Conv2D(4, 3),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(4, activation="softmax"),
            ]
        )
        model.compile(
            keras.optimizers.SGD(0.1, momentum=0.9),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    reference, ours = compiled(), compiled()
    expected = reference.fit(data, validation_data=data, epochs=2, verbose=0, shuffle=False)
    history = fit_distributed(
        ours, tf.distribute.get_strategy(), data, validation_data=data, epochs=2, verbose=0
    )
    for a, b in zip(reference.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(history.history[key], expected.history[key], rtol=1e-5)


def test_distributed_loop_resumes_from_its_backup(tmp_path):
    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("simulated crash")

    data = tf.data.Dataset.from_tensor_slices(
        (np.ones((8, 4), "float32"), np.zeros(8, "int32"))
    ).batch(4)

    def run(extra):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy")
        backup = EpochBackup(tmp_path / "backup")
        return fit_distributed(
            model,
            tf.distribute.get_strategy(),
            data,
            epochs=4,
            callbacks=[backup, *extra],
            verbose=0,
            initial_epoch=backup.restore(model),
        )

    with pytest.raises(RuntimeError, match="simulated crash"):
        run([Crash()])
    history = run([])
    assert history.epoch == [2, 3]  # epochs 0 and 1 were not trained again


def test_a_multi_worker_backup_keeps_the_epoch_before_its_newest(tmp_path):
    """A kill can leave one worker of a multi-worker run a backup behind the
    others: they keep the one before their newest, so that every worker can
    resume from the epoch all of them hold."""
    from keras_memblocks.training.checkpoints import RunFileError

    data = tf.data.Dataset.from_tensor_slices(
        (np.ones((8, 4), "float32"), np.zeros(8, "int32"))
    ).batch(4)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    backup = EpochBackup(tmp_path / "backup", keep=2)
    weights = []

    class Weights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights.append(model.get_weights()[0].copy())

    model.fit(data, epochs=3, callbacks=[backup, Weights()], verbose=0)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
        "epoch-0002.weights.h5",
        "epoch-0003.weights.h5",
    ]
    assert backup.latest() == 3
    assert backup.restore(model, 2) == 2
    np.testing.assert_array_equal(model.get_weights()[0], weights[1])
    with pytest.raises(RunFileError, match="no backup of epoch 1"):
        backup.restore(model, 1)


def test_tensorboard_logs(tmp_path):
    train(tiny_digits(epochs=1, tensorboard=True), tmp_path, verbose=0)
    assert any((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.large  # 24 s; make test checks the wait's timeout, which ends it in one line too
def test_a_worker_waiting_for_a_missing_peer_says_so_and_stops_on_sigterm(tmp_path):
    # TensorFlow's own SIGTERM handler (installed with the strategy) ignored
    # SIGTERM while a worker waited for a peer that never started, so
    # `timeout`, Slurm and Kubernetes could not stop it; memblocks train now
    # runs the worker in a child process that it kills.
    import signal
    import time

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}}
    memblocks = str(Path(sys.executable).with_name("memblocks"))
    process = subprocess.Popen(
        [memblocks, "train", "--strategy", "multiworker", "--epochs", "1", "--output-dir"]
        + [str(tmp_path / "run"), "--set", "max_steps_per_epoch=2", "--set", "image_size=16"],
        env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waiting = ""
        deadline = time.monotonic() + 120
        while "waiting for every worker" not in waiting and time.monotonic() < deadline:
            waiting += process.stderr.readline()
        assert f"worker 0 of 2 ({workers[0]})" in waiting, waiting
        time.sleep(15)  # into the wait for the peer, past the strategy's creation
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 128 + signal.SIGTERM
        assert "worker stopped (SIGTERM); start every worker again" in process.stderr.read()
    finally:
        process.kill()
        process.communicate()


def test_a_worker_whose_peer_never_starts_gives_up_after_the_peer_timeout(tmp_path):
    import time

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}}
    start = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("memblocks")), "train", "--strategy", "multiworker"]
        + ["--epochs", "1", "--output-dir", str(tmp_path / "run"), "--peer-timeout", "20"],
        env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert result.returncode == 2
    assert time.monotonic() - start < 60
    # (Before them, TensorFlow's start-up lines: the tests set TF_CPP_MIN_LOG_LEVEL.)
    lines = [line for line in result.stderr.splitlines() if line.startswith("memblocks:")]
    assert "waiting for every worker in TF_CONFIG" in lines[0], result.stderr
    assert lines[-1].startswith("memblocks: error: not every process of the run started")
    assert "--peer-timeout 20 s" in lines[-1]


def test_tf_distribute_strategies_are_refused_on_another_backend(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).with_name("memblocks")), "train", "--strategy", "multiworker"]
        + ["--epochs", "1", "--output-dir", str(tmp_path / "run")],
        env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "trains on the TensorFlow backend only" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


MULTIWORKER_RECIPE = ["train", "--recipe", "digits", "--batch-size", "32", "--set", "image_size=16"]
MULTIWORKER_RECIPE += ["--model-args", json.dumps(TINY), "--epochs", "4"]
MULTIWORKER_RECIPE += ["--max-steps-per-epoch", "8"]


def _history_rows(run):
    with open(run / "seed_0" / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.large
def test_multiworker_through_the_command_matches_one_process_and_resumes_after_sigterm(tmp_path):
    """Two `memblocks train --strategy multiworker` workers on localhost, as a
    user starts them: worker 0 is stopped with SIGTERM after two epochs (both
    end, each in one line), both are started again, and each ends with the
    history and test metrics of an uninterrupted single-process run."""
    memblocks = str(Path(sys.executable).with_name("memblocks"))
    single = subprocess.run(
        [memblocks, *MULTIWORKER_RECIPE, "--output-dir", str(tmp_path / "single")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]

    logs = []

    def start(index):
        # Into files, not pipes: a worker blocked on a full pipe stops answering its peer.
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        log = tmp_path / f"worker_{index}_{len(logs)}.log"
        logs.append(log)
        with open(log, "w") as output:
            return subprocess.Popen(
                [memblocks, *MULTIWORKER_RECIPE, "--strategy", "multiworker"]
                + ["--output-dir", str(tmp_path / f"worker_{index}")],
                env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    processes = [start(0), start(1)]
    try:
        history = tmp_path / "worker_0" / "seed_0" / "history.csv"
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            if history.exists() and len(history.read_text().splitlines()) >= 3:
                break
            time.sleep(0.2)
        stopped = time.monotonic()
        processes[0].send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in processes]
        assert time.monotonic() - stopped < 30
        assert codes[0] == 128 + signal.SIGTERM
        err1 = logs[1].read_text()
        assert codes[1] == 2, err1[-3000:]
        assert "another process of the run stopped or cannot be reached" in err1
        assert "Traceback" not in err1
    finally:
        for p in processes:
            p.kill()
    processes = [start(0), start(1)]
    try:
        for process, log in zip(processes, logs[2:]):
            assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        for p in processes:
            p.kill()
    expected = _history_rows(tmp_path / "single")
    for index in (0, 1):
        rows = _history_rows(tmp_path / f"worker_{index}")
        assert len(rows) == len(expected) == 4
        for row, reference in zip(rows, expected):
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                assert float(row[key]) == pytest.approx(float(reference[key]), rel=1e-4, abs=1e-5)
        results = json.loads((tmp_path / f"worker_{index}" / "seed_0" / "results.json").read_text())
        reference = json.loads((tmp_path / "single" / "seed_0" / "results.json").read_text())
        assert results["replicas"] == 2
        assert results["test"]["accuracy"] == pytest.approx(reference["test"]["accuracy"], abs=1e-6)


def test_a_run_stored_before_a_field_existed_is_the_same_config(tmp_path):
    # 0.6.0 added `max_eval_steps`; a run directory of 0.5.0 stored no such field.
    from keras_memblocks.training.run_directory import ConfigChangedError
    from keras_memblocks.training.run_directory import check_config

    config = tiny_digits(epochs=1)
    older = {k: v for k, v in config.to_dict().items() if k != "max_eval_steps"}
    (tmp_path / "config.json").write_text(json.dumps(older, default=list))
    check_config(tmp_path, config.to_dict(), False, config.defaults())  # the default: the same
    with pytest.raises(ConfigChangedError, match="differs in: max_eval_steps"):
        check_config(tmp_path, config.replace(max_eval_steps=2).to_dict(), False, config.defaults())


def test_a_field_the_dataset_does_not_read_does_not_tell_runs_apart(tmp_path):
    # Before 0.7.0 a config could carry another dataset's option (the sr-imagenet
    # recipe had image_size=224, which ImageNet never read): its run directory
    # resumes under the config that leaves the option out.
    from keras_memblocks.training.run_directory import ConfigChangedError
    from keras_memblocks.training.run_directory import check_config

    config = get_recipe("sr-imagenet")
    assert config.unread_fields() == ("image_size", "crop_size")
    older = {**config.to_dict(), "image_size": 224}
    (tmp_path / "config.json").write_text(json.dumps(older, default=list))
    check_config(tmp_path, config.to_dict(), False, ignored=config.unread_fields())
    with pytest.raises(ConfigChangedError, match=r"differs in: epochs\)"):
        check_config(
            tmp_path, config.replace(epochs=3).to_dict(), False, ignored=config.unread_fields()
        )
