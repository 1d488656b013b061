"""Worker processes on this machine: one slot per device (and CPU threads shared between them), the
``ecasweep worker`` command each runs, and starting and stopping them together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import optuna

from ..engine.devices import cpu_count, resolve_device
from ..errors import SpecError
from . import signals
from .signals import Terminated

POLL_SECONDS = 1.0


@dataclass
class Slot:
    """One worker: its device and its share of the CPU threads."""

    device: str
    threads: int


#: more worker processes than this on one machine is a typo (each imports PyTorch and holds a model)
MAX_WORKERS = 256


def plan_slots(devices: Sequence[str] | None, workers: int | None) -> list[Slot]:
    """Worker slots: one per listed device (``cpu,cpu`` is two CPU workers), or ``workers`` workers
    on the one device given; ``auto`` is one worker per GPU, else the CPU. CPU threads are split
    between CPU workers. ``workers`` None or 0 on a lone CPU means one single-threaded worker per
    core: small CIFAR-style models use one core better than two (see docs/performance.md)."""
    names = [d.strip() for d in (devices or ["auto"]) if d.strip()] or ["auto"]
    if workers is not None and not 0 <= workers <= MAX_WORKERS or len(names) > MAX_WORKERS:
        raise SpecError(f"--workers: expected 0 (one per core on the CPU, one per GPU) to {MAX_WORKERS} "
                        f"worker processes, got {workers if workers else len(names)}")
    if names == ["auto"]:
        device = resolve_device("auto")
        if device.type == "cuda":
            import torch

            names = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        else:
            names = [device.type]
    if not workers and names == ["cpu"]:
        workers = cpu_count()
    if workers and workers > 1:
        if len(names) != 1:
            raise SpecError("--workers N repeats one device; with several --devices, list one per worker")
        names = names * workers
    for name in names:
        resolve_device(name)  # refuse a device that does not exist before any worker starts
    n_cpu = sum(1 for n in names if n == "cpu")
    cpu_threads = max(1, cpu_count() // max(1, n_cpu))
    return [Slot(n, cpu_threads if n == "cpu" else max(1, cpu_count() // len(names))) for n in names]


def worker_command(study_name: str, slot: Slot, checkpoint_dir: str) -> list[str]:
    """The command line of one worker. The storage URL is not on it: it goes in the worker's
    environment (``worker_env``), since every local user can read a process's arguments (``ps``)
    and the URL may hold a password."""
    return [sys.executable, "-m", "ecasweep", "worker", study_name, "--device", slot.device,
            "--threads", str(slot.threads), "--checkpoint-dir", checkpoint_dir, "--quiet"]


def worker_env(url: str) -> dict[str, str]:
    return {**os.environ, "ECASWEEP_STORAGE": url}


def run_workers(study: optuna.Study, url: str, slots: list[Slot], checkpoint_dir: str,
                on_poll: Callable[[], None] | None = None) -> list[int]:
    """Start one ``ecasweep worker`` process per slot and wait; returns their exit codes.

    On Ctrl-C or SIGTERM the workers are sent the same signal, which marks their trials
    interrupted, and this waits for them before re-raising: no worker outlives ``run``.
    """
    env = {**worker_env(url), signals.PARENT_ENV: str(os.getpid())}  # a worker stops if this process dies
    procs = [subprocess.Popen(worker_command(study.study_name, slot, checkpoint_dir), env=env) for slot in slots]
    try:
        with signals.stops_as_interruptions():  # an error a stop caused in on_poll's storage read
            while any(p.poll() is None for p in procs):
                if on_poll:
                    on_poll()
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt as exc:
        sig = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        for p in procs:
            if p.poll() is None:
                p.send_signal(sig)
        for p in procs:
            p.wait()
        raise
    return [p.returncode for p in procs]


def default_checkpoint_dir(study_name: str) -> str:
    return str(Path(os.environ.get("ECASWEEP_CHECKPOINTS", ".ecasweep/checkpoints")) / _safe(study_name))


def _safe(name: str) -> str:
    """``name`` as one plain path component: never empty, ``.``, ``..``, absolute or nested."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".")
    return safe or "study"
