"""Interleaved micro-benchmark timing: several cases, many rounds, min and median.

Each round runs every case once, in a shuffled order, so slow drifts of the machine
(frequency, a neighbour's load) hit all cases alike instead of whichever ran last. The
per-iteration cost of timeit's own loop is measured the same way (an empty statement)
and subtracted, so ratios compare the operations, not the loop. timeit turns the garbage
collector off while it times, as usual for micro-benchmarks.

Example::

    >>> stats = time_ops([OpCase("len", "f(x)", {"f": len, "x": "abc"})],
    ...                  repeats=2, run_seconds=0.001)
    >>> stats["len"].best_ns > 0
    True
"""

from __future__ import annotations

import random
import statistics
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_CALIBRATION_OPS = 1_000
_OVERHEAD = "<timeit loop>"


@dataclass(frozen=True)
class OpCase:
    """One statement to time, run with ``namespace`` as its globals."""

    label: str
    stmt: str
    namespace: dict[str, Any]


@dataclass(frozen=True)
class OpStats:
    """Per-operation times of one case, loop overhead subtracted, in nanoseconds."""

    label: str
    best_ns: float
    median_ns: float
    runs_ns: tuple[float, ...]
    number: int


def time_ops(
    cases: Sequence[OpCase],
    *,
    repeats: int = 9,
    run_seconds: float = 0.1,
    seed: int = 0,
) -> dict[str, OpStats]:
    """Time every case ``repeats`` times (interleaved) for about ``run_seconds`` a run."""
    labels = [c.label for c in cases]
    if len(set(labels)) != len(labels) or _OVERHEAD in labels:
        raise ValueError(f"bench timing: case labels must be unique, got {labels}")
    timers = {c.label: timeit.Timer(c.stmt, globals=c.namespace) for c in cases}
    timers[_OVERHEAD] = timeit.Timer("pass")
    numbers = {label: _calibrate(timer, run_seconds) for label, timer in timers.items()}
    per_op: dict[str, list[float]] = {label: [] for label in timers}
    order = list(timers)
    rng = random.Random(seed)
    for _ in range(max(1, repeats)):
        rng.shuffle(order)
        for label in order:
            number = numbers[label]
            per_op[label].append(timers[label].timeit(number) / number * 1e9)
    overhead = min(per_op[_OVERHEAD])
    result = {}
    for label in labels:
        net = [max(t - overhead, 0.0) for t in per_op[label]]
        result[label] = OpStats(
            label=label,
            best_ns=min(net),
            median_ns=statistics.median(net),
            runs_ns=tuple(net),
            number=numbers[label],
        )
    return result


def _calibrate(timer: timeit.Timer, run_seconds: float) -> int:
    """Operations per run so that one run lasts about ``run_seconds`` (also a warm-up)."""
    spent = timer.timeit(_CALIBRATION_OPS)
    if spent <= 0:
        return _CALIBRATION_OPS * 100
    return max(_CALIBRATION_OPS, int(_CALIBRATION_OPS * run_seconds / spent))


def time_calls(
    calls: Sequence[tuple[str, Callable[[], object]]],
    *,
    repeats: int,
    before_each: Callable[[], object] | None = None,
    warmup: bool = True,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Wall seconds of each call, ``repeats`` interleaved rounds (for long operations).

    ``before_each`` runs untimed before every call (e.g. ``gc.collect``); ``warmup``
    runs each call once, untimed, first.
    """
    labels = [label for label, _ in calls]
    if len(set(labels)) != len(labels):
        raise ValueError(f"bench timing: call labels must be unique, got {labels}")
    funcs = dict(calls)
    times: dict[str, list[float]] = {label: [] for label in labels}
    order = list(labels)
    rng = random.Random(seed)
    for label in labels if warmup else ():
        funcs[label]()
    for _ in range(max(1, repeats)):
        rng.shuffle(order)
        for label in order:
            if before_each is not None:
                before_each()
            start = time.perf_counter()
            funcs[label]()
            times[label].append(time.perf_counter() - start)
    return times
