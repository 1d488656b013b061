"""Cost estimates for ``--dry-run``: from the study's own finished trials, else a short timed probe."""

from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch

from ..models.backbones import build_model
from ..engine.data import load_dataset
from ..engine.devices import cpu_count
from ..store.results import TrialRecord
from ..spec import Cell, StudySpec
from ..engine.train import make_optimizer

PROBE_STEPS = 3


def estimate_seconds(spec: StudySpec, cells: Sequence[Cell], records: Sequence[TrialRecord], slots) -> tuple[float, str]:
    """Wall seconds to run ``cells`` on ``slots`` workers, and how the figure was obtained.

    Per (backbone, arm): attention modules differ in cost (CBAM's spatial gate, a non-local block), so
    each pair is timed on its own model.
    """
    per_pair, how = pair_seconds(spec, cells, records, slots)
    total = sum(per_pair[(c.backbone, c.arm.id)] for c in cells)
    return total / parallelism(slots), how


def parallelism(slots) -> int:
    """How many of ``slots`` make progress at once: every accelerator worker, and CPU workers up to
    the number of cores (more CPU workers than cores share them and finish no sooner).

    >>> from ecasweep.sweep.slots import Slot
    >>> parallelism([Slot("cpu", 1)] * 64) <= cpu_count()
    True
    """
    on_cpu = sum(1 for s in slots if getattr(s, "device", "cpu") == "cpu")
    return max(1, min(on_cpu, cpu_count()) + len(slots) - on_cpu)


def pair_seconds(spec: StudySpec, cells: Sequence[Cell], records: Sequence[TrialRecord],
                 slots) -> tuple[dict[tuple[str, str], float], str]:
    """Seconds one trial of each (backbone, arm id) of ``cells`` takes, and how that was obtained."""
    past: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if r.complete and isinstance(r.metrics.get("wall_seconds"), (int, float)):
            past.setdefault((r.backbone, r.arm), []).append(float(r.metrics["wall_seconds"]))
    per_pair = {pair: statistics.median(v) for pair, v in past.items()}
    how = "median wall time of finished trials"
    missing = {(c.backbone, c.arm.id): c.arm for c in cells if (c.backbone, c.arm.id) not in per_pair}
    if missing:
        data = load_dataset(spec.data, seed=0)
        threads = torch.get_num_threads()
        # As each worker will run: with its share of the cores (all cores for one worker slow down
        # several-fold when the machine is busy, and are not what a worker of several gets).
        torch.set_num_threads(getattr(slots[0], "threads", None) or threads if slots else threads)
        try:
            per_pair.update({(backbone, arm_id): _probe(spec, data, backbone, arm)
                             for (backbone, arm_id), arm in missing.items()})
        finally:
            torch.set_num_threads(threads)
        how = "timed probe of a few training steps" if not past else how + " and a timed probe"
    return per_pair, how


def _probe(spec: StudySpec, data, backbone: str, arm) -> float:
    """Seconds for one trial of ``arm`` on ``backbone``: a few timed training steps, scaled to the recipe."""
    model = build_model(backbone, arm.attention, num_classes=data.num_classes, in_channels=data.in_channels,
                        **({"width": spec.model["width"]} if spec.model.get("width") else {}), **arm.kwargs)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = make_optimizer(model, spec.train, torch.device("cpu"))
    batch = spec.train.batch_size
    x, y = next(data.train_batches(1, batch))
    step_times = []
    for _ in range(PROBE_STEPS + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_times.append(time.perf_counter() - start)
    per_image = statistics.median(step_times[1:]) / len(y)
    eval_images = sum(len(yb) for _, yb in data.eval_batches("test", spec.train.eval_batch_size))
    return per_image * (spec.train.epochs * data.num_train + eval_images / 3)
