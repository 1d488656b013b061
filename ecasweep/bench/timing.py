"""How the benchmarks time things: warm-up, interleaved pairs, medians and quartiles of ratios."""

from __future__ import annotations

import math
import os
import statistics
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch

from ..engine.devices import cpu_count



Timer = Callable[[], object]


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and range of ``values``.

    >>> summarize([1.0, 2.0, 3.0, 4.0])["median"]
    2.5
    """
    s = sorted(values)
    return {"median": statistics.median(s), "q1": _quantile(s, 0.25), "q3": _quantile(s, 0.75),
            "min": s[0], "max": s[-1]}


def _quantile(sorted_values: list[float], q: float) -> float:
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """A function that waits for ``device`` to finish its queued work (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def _elapsed(fn: Timer, number: int, sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return (time.perf_counter() - start) / number


def calibrate(fn: Timer, min_time: float = 0.02, sync: Callable[[], None] = lambda: None) -> int:
    """Calls per timed sample so that one sample lasts at least ``min_time`` seconds."""
    return max(1, math.ceil(min_time / max(_elapsed(fn, 1, sync), 1e-9)))


def time_pair(fn_a: Timer, fn_b: Timer, repeats: int = 21, warmup: int = 3, number: int | None = None,
              sync: Callable[[], None] = lambda: None) -> dict:
    """Time ``fn_a`` and ``fn_b`` interleaved; summarize the per-repeat ratios ``t_a / t_b``.

    Each repeat times both (``number`` calls each; by default enough for 20 ms), alternating which
    goes first, so drift and bursts of load on a shared machine fall on both. Returns seconds per
    call of each and the ratio summary: ``{"a": {...}, "b": {...}, "ratio": {"median", "q1", "q3",
    "min", "max"}, "repeats": n, "number": calls}``. A ratio above 1 means ``fn_b`` is faster.

    >>> r = time_pair(lambda: sum(range(1000)), lambda: sum(range(1000)), repeats=5, warmup=1)
    >>> sorted(r)
    ['a', 'b', 'number', 'ratio', 'repeats']
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn_a()
        fn_b()
    number = number or calibrate(fn_a, sync=sync)
    times_a, times_b = [], []
    for i in range(repeats):
        if i % 2:
            times_b.append(_elapsed(fn_b, number, sync))
            times_a.append(_elapsed(fn_a, number, sync))
        else:
            times_a.append(_elapsed(fn_a, number, sync))
            times_b.append(_elapsed(fn_b, number, sync))
    ratios = [a / b for a, b in zip(times_a, times_b)]
    return {"a": summarize(times_a), "b": summarize(times_b), "ratio": summarize(ratios),
            "repeats": repeats, "number": number}


def time_one(fn: Timer, repeats: int = 21, warmup: int = 3, number: int | None = None,
             sync: Callable[[], None] = lambda: None) -> dict:
    """Seconds per call of ``fn``: median, quartiles and range over ``repeats``."""
    for _ in range(warmup):
        fn()
    number = number or calibrate(fn, sync=sync)
    return summarize([_elapsed(fn, number, sync) for _ in range(repeats)])


@contextmanager
def _threads(n: int | None) -> Iterator[int]:
    """Run with ``n`` intra-op threads (None: leave as is), restoring the count afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _cpu_threads(device: torch.device, threads: int | None) -> int | None:
    """Default CPU threads: 1, as each worker of a sweep has (one single-threaded worker per core)."""
    return (threads or 1) if device.type == "cpu" else None


def _machine(device: torch.device, threads: int) -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:  # the vector unit matters: the same code runs ~3x faster with AVX-512 than with AVX2 here
        name = f"CPU, {cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}"
    return {"device": str(device), "device_name": name, "threads": threads, "torch": torch.__version__,
            "load_average": load}
