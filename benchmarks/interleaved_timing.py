"""Timing shared by the benchmarks: every candidate once per round, in turn,
so that machine noise hits all of them alike."""

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
