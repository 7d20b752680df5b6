"""Timing shared by the benchmarks: every candidate once per round, in turn,
so that machine noise hits all of them alike; and the machine it ran on."""

import importlib.metadata
import os
import platform
import time


def time_interleaved(calls, rounds):
    """Calls every function of `calls` once per round; seconds per call.

    Returns `{key: [seconds of each round]}`.
    """
    times = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    return times


def machine():
    """The machine a result was measured on: CPU model, cores, GPU, backend, versions."""
    import keras

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(
                line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    backend = keras.backend.backend()
    gpu = None
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        gpu = gpus[0].device_kind if gpus else None
    elif backend == "torch":
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            gpu = tf.config.experimental.get_device_details(gpus[0]).get("device_name")
    versions = {}
    for name in ("keras", "jax", "jaxlib", "torch", "tensorflow", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "gpu": gpu,
        "backend": backend,
        "python": platform.python_version(),
        "versions": versions,
    }
