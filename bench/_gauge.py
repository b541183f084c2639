"""A gauge of how fast this machine runs at the moment: a fixed piece of CPU work (a Python loop
and a NumPy sort) timed, the median of three. The development machine is shared with others,
and its speed moves by up to a factor of two within an hour (the same seeding of a million
buildings ran at 41,000/s and at 61,000/s): a bench's figures are read beside the gauge taken
with them. Lower is faster."""

from __future__ import annotations

import statistics
import time

import numpy as np

_VALUES = np.random.default_rng(1).random(1_000_000)


def gauge_ms() -> float:
    """Milliseconds of the fixed work (median of three; about half a second in all)."""
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i * i
        for _ in range(6):
            np.sort(_VALUES)
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)
