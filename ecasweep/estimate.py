"""Cost estimates for ``--dry-run``: from the study's own finished trials, else a short timed probe."""

from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch

from .backbones import build_model
from .data import load_dataset
from .results import TrialRecord
from .spec import Cell, StudySpec
from .train import make_optimizer

PROBE_STEPS = 3


def estimate_seconds(spec: StudySpec, cells: Sequence[Cell], records: Sequence[TrialRecord], slots) -> tuple[float, str]:
    """Wall seconds to run ``cells`` on ``slots`` workers, and how the figure was obtained."""
    past: dict[str, list[float]] = {}
    for r in records:
        if r.complete and isinstance(r.metrics.get("wall_seconds"), (int, float)):
            past.setdefault(r.backbone, []).append(float(r.metrics["wall_seconds"]))
    per_backbone = {b: statistics.median(v) for b, v in past.items()}
    how = "median wall time of finished trials"
    missing = {c.backbone for c in cells} - set(per_backbone)
    if missing:
        per_backbone.update({b: _probe(spec, b) for b in missing})
        how = "timed probe of a few training steps" if not past else how + " and a timed probe"
    total = sum(per_backbone[c.backbone] for c in cells)
    return total / max(1, len(slots)), how


def _probe(spec: StudySpec, backbone: str) -> float:
    """Seconds for one trial of ``backbone``: a few timed training steps, scaled to the recipe."""
    data = load_dataset(spec.data, seed=0)
    model = build_model(backbone, "eca", num_classes=data.num_classes, in_channels=data.in_channels,
                        **({"width": spec.model["width"]} if spec.model.get("width") else {}))
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
