"""``bench sweep``: a small grid study with 1 worker and with N workers: trials per hour and the time
spent outside training per trial."""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch

from ..engine.devices import cpu_count, resolve_device

from .timing import (summarize, _machine)


SWEEP_STUDY = """
name = "bench-sweep"
description = "ecasweep bench sweep: a small grid on synthetic data"
mirrors = "Table 2"
layout = "table2"
baseline = "none"
seeds = {seeds}
backbones = ["{backbone}"]

[data]
dataset = "synthetic"
synthetic_size = {images}
subset = "none"

[train]
epochs = {epochs}
batch_size = 32
lr = 0.05
eval_batch_size = 256

[[arms]]
attention = "none"

[[arms]]
attention = "se"
r = 4

[[arms]]
attention = "eca"
k = 3
"""


def bench_sweep(workers: int | None = None, seeds: int = 2, backbone: str = "resnet-8", images: int = 4096,
                epochs: int = 1, repeats: int = 1, device: str = "cpu") -> dict:
    """A small grid study (3 arms x ``seeds`` on synthetic data) run with 1 worker and with ``workers``.

    Each run uses ``ecasweep.runner.run`` on a fresh SQLite storage in a temporary directory, as
    ``ecasweep run`` does: on the CPU one worker gets all cores, N workers are N processes with the
    threads split between them. Runs alternate (1, N, N, 1, ...). Per run:

    * trials per hour over the wall time of the whole run, start-up and the last worker's tail
      included (what a short run gets);
    * steady-state trials per hour, ``workers * 3600 / mean trial duration`` (Optuna's start to
      complete, claiming and storing included): what a long sweep gets once the workers are up;
    * start-up: from the run's start to each worker's first trial (importing torch, Optuna and the
      model code in a fresh process; the single worker runs in-process and pays none);
    * time outside training: per trial, Optuna's duration minus ``run_trial``'s wall_seconds
      (claiming, storing), and per worker all its time not spent in ``run_trial`` (start-up,
      claiming, storage, waiting at the end) shared out over the trials.
    """
    n = workers or (cpu_count() if resolve_device(device).type == "cpu" else 1)
    runs = {1: [], n: []} if n != 1 else {1: []}
    with tempfile.TemporaryDirectory(prefix="ecasweep-bench-") as tmp:
        study_file = Path(tmp) / "bench-sweep.toml"
        study_file.write_text(SWEEP_STUDY.format(seeds=seeds, backbone=backbone, images=images, epochs=epochs))
        for i in range(repeats):
            order = [1, n] if i % 2 == 0 else [n, 1]
            for count in dict.fromkeys(order):
                runs[count].append(_sweep_run(study_file, Path(tmp) / f"run-{i}-{count}", count, device))
    one, many = runs[1], runs[n]
    ratios = [m["trials_per_hour"] / o["trials_per_hour"] for o, m in zip(one, many)]
    steady = [m["steady_trials_per_hour"] / o["steady_trials_per_hour"] for o, m in zip(one, many)]
    return {"machine": _machine(resolve_device(device), torch.get_num_threads()), "workers": n,
            "cells": 3 * seeds, "backbone": backbone, "images": images, "epochs": epochs, "repeats": repeats,
            "one": _sweep_summary(one), "many": _sweep_summary(many), "ratio": summarize(ratios),
            "steady_ratio": summarize(steady)}


def _sweep_run(study_file: Path, folder: Path, workers: int, device: str) -> dict[str, float]:
    import warnings

    import optuna

    from ..sweep import runner

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    folder.mkdir()
    url = f"sqlite:///{folder / 'bench.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started_at, start = datetime.now(), time.perf_counter()  # Optuna stamps trials with naive local time
    outcome = runner.run(str(study_file), overrides=[], storage_url=url, devices=[device], workers=workers,
                         checkpoint_dir=str(folder / "ckpt"))
    elapsed = time.perf_counter() - start
    trials = [t for t in outcome.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    walls = [float(t.user_attrs["wall_seconds"]) for t in trials]
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    first_start: dict[str, datetime] = {}
    for t in trials:
        worker = str(t.user_attrs.get("worker"))
        first_start[worker] = min(first_start.get(worker, t.datetime_start), t.datetime_start)
    return {"elapsed_s": elapsed, "trials": len(trials), "trials_per_hour": 3600 * len(trials) / elapsed,
            "steady_trials_per_hour": 3600 * workers / statistics.mean(durations),
            "startup_s": statistics.median((s - started_at).total_seconds() for s in first_start.values()),
            "trial_s": statistics.median(walls),
            "in_trial_overhead_s": statistics.median(d - w for d, w in zip(durations, walls)),
            "outside_training_per_trial_s": (elapsed * workers - sum(walls)) / max(1, len(trials))}


def _sweep_summary(runs: list[dict[str, float]]) -> dict[str, float]:
    summary = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    summary["in_trial_overhead_pct_of_30s"] = 100 * summary["in_trial_overhead_s"] / 30
    summary["outside_training_pct_of_30s"] = 100 * summary["outside_training_per_trial_s"] / 30
    return summary
