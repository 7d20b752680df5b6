"""Several seeds of one config: `train_seeds`, its summary, and the seeds' checks."""

import json
import numbers
from pathlib import Path

import numpy as np

from keras_memblocks.training import distribution
from keras_memblocks.training import run_directory
from keras_memblocks.training import specs
from keras_memblocks.training.results import finished_results
from keras_memblocks.training.results import raise_finished
from keras_memblocks.training.run_directory import check_run_config
from keras_memblocks.training.trainer import train
from keras_memblocks.utils import files
from keras_memblocks.utils.files import atomic_write_json


def main_metric(results):
    """`(name, value)` of a run's headline test number (the task's first
    metric present, else the loss)."""
    task = specs.TASKS[specs.model_spec(results["config"]["model"]).task]
    for key in task.headline_metrics:
        if key in results["test"]:
            return key, results["test"][key]
    return "loss", results["test"]["loss"]


SUMMARY_MARK = f"<!-- {files.MARK}: train_seeds -->"
SEED_RANGE = (0, 2**32 - 1)  # what keras.utils.set_random_seed takes


def check_seeds(seeds):
    """`seeds` as a list of Python ints, each in `SEED_RANGE` and given once.

    Examples:
        >>> from keras_memblocks.training.seeds import check_seeds
        >>> try:
        ...     check_seeds([0, 0])
        ... except ValueError as error:
        ...     print(error)
        --seeds (seeds=) lists seed 0 twice; give each seed once: one run per seed.
    """
    checked = []
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"--seeds (seeds=) takes integers. Received: {files.shorten(seed)}")
        if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
            raise ValueError(
                f"--seeds (seeds=) takes integers from {SEED_RANGE[0]} to {SEED_RANGE[1]}. "
                f"Received: {seed}"
            )
        if int(seed) in checked:
            raise ValueError(
                f"--seeds (seeds=) lists seed {seed} twice; give each seed once: one run per seed."
            )
        checked.append(int(seed))
    if not checked:
        raise ValueError("--seeds (seeds=) is empty; give at least one seed.")
    return checked


def train_seeds(config, seeds, output_dir, verbose=None, overwrite=False):
    """Runs `train` once per seed; writes `summary.md` with mean ± sd.

    A seed whose run already finished in `output_dir/seed_<s>` is not
    trained again (a line says so and where its results are, unless
    `verbose=0`) unless
    `overwrite`; its results enter the summary as they are.

    Returns the summary dict (the per-seed values and their mean and sd,
    in percent for accuracy and IoU, as the papers report them; `runs`:
    every seed's results dict), or `None` in a data-parallel run's process
    other than 0 (process 0 writes and returns the summary).

    Examples:
        >>> import tempfile
        >>> from keras_memblocks.training import get_recipe, train_seeds
        >>> config = get_recipe("digits").replace(epochs=1, max_steps_per_epoch=2,
        ...                                       model_args={"dataset": "cifar10", "width": 2})
        >>> summary = train_seeds(config, seeds=(0, 1), output_dir=tempfile.mkdtemp(), verbose=0)
        >>> summary["metric"], summary["seeds"], len(summary["values"])
        ('accuracy', [0, 1], 2)
    """
    seeds = check_seeds(seeds)
    output_dir = Path(output_dir)
    # One DataParallelRun for every seed (it joins no processes: `distribution.connect` did).
    strategy = distribution.make("data-parallel") if config.strategy == "data-parallel" else None
    if distribution.is_follower(strategy):  # process 0 decides, writes and reports
        for seed in seeds:
            train(config, output_dir / f"seed_{seed}", seed, verbose, strategy, overwrite)
        return None
    summary_files = [output_dir / "summary.md", output_dir / "summary.json"]
    try:
        for path in summary_files:  # checked before training: a user's own file is never replaced
            # What versions before 0.3 wrote, unmarked: the table's header, the summary's first key.
            run_directory.check_ours(
                path, legacy_starts=("| model | dataset | ", '{\n  "metric": ')
            )
    except BaseException:
        distribution.Handshake(strategy).stop()  # the other processes stop at the first seed
        raise
    runs = []
    for seed in seeds:
        seed_dir = output_dir / f"seed_{seed}"
        handshake = distribution.Handshake(strategy)
        try:
            finished = None if overwrite else finished_results(seed_dir)
            if finished is not None:
                # Never reported under another config's name, nor a diverged run as a result.
                check_run_config(seed_dir, config)
                if finished.get("status") == "diverged":
                    raise_finished(seed_dir, finished)
                handshake.skip()
        except BaseException:
            handshake.stop()  # an error above stops the other processes of the run too
            raise
        if finished is not None:
            if verbose != 0:  # verbose=0 is silent, as in fit
                print(
                    f"seed {seed}: already finished, not trained again (results in "
                    f"{seed_dir / 'results.json'}; --overwrite trains it again)",
                    flush=True,
                )
            runs.append(finished)
        else:
            runs.append(train(config, seed_dir, seed, verbose, strategy, overwrite))
    metric, _ = main_metric(runs[0])
    scale = 1.0 if metric == "loss" else 100.0
    values = np.array([main_metric(r)[1] * scale for r in runs])
    summary = {
        "metric": metric,
        "seeds": list(seeds),
        "values": [round(float(v), 4) for v in values],
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }
    lines = [
        SUMMARY_MARK,
        f"| model | dataset | {metric} (mean ± sd over {len(seeds)} seeds) |",
        "|---|---|---|",
        f"| {config.model} {json.dumps(config.model_args, default=list)} | {config.dataset} "
        f"| {summary['mean']:.2f} ± {summary['sd']:.2f} |",
    ]
    files.atomic_write(summary_files[0], "\n".join(lines) + "\n")
    summary["model_paths"] = [r["model_path"] for r in runs]
    atomic_write_json(summary_files[1], {"written_by": files.PACKAGE, **summary})
    summary["runs"] = runs  # every seed's results dict (not written: results.json has each)
    return summary
