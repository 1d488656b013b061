"""What a sweep stores in Optuna, and how reports read it back.

The storage is Optuna's own, so optuna-dashboard and ``optuna trials`` read it too. ecasweep adds:

- on the study, user attributes ``ecasweep_spec.<section>``: the resolved study spec
  (``StudySpec.to_dict()``) section by section, each short enough for optuna-dashboard
  (``spec_attrs``; studies written before hold it whole in ``ecasweep_spec``), and
  ``ecasweep_hash``: the hash of everything that changes results;
- on each trial of a grid study, its cell's factors as Optuna parameters (``params``: attention,
  the variant's arguments, backbone, seed);
- on each trial, user attributes ``cell`` (the cell's stable key), ``arm`` (the arm's id: all
  parameters but the seed), ``backbone``, ``seed``, ``arm_params`` (attention name and arguments),
  the metrics of ``TrialResult`` (``top1``, ``top5``, ``loss``, ``val_top1``, ``total_params``,
  ``attention_params``, ``flops``, ``kernel_sizes``, ``wall_seconds``, ``images_per_second``,
  ``device``, ``versions``...) and, for a failed trial, ``fail_reason``.

A COMPLETE trial's value is its objective: the final test top-1 in percent for grid studies, the
validation top-1 for search studies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import optuna

SPEC_ATTR = "ecasweep_spec"
HASH_ATTR = "ecasweep_hash"
CELL_ATTRS = ("cell", "arm", "backbone", "seed", "arm_params")
FAIL_REASON = "fail_reason"
#: set on a trial that found its cell already running or done when it was claimed (it did not run)
DUPLICATE_OF = "duplicate_of"


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial, as reports see it."""

    number: int
    state: str  # COMPLETE, FAIL, RUNNING, WAITING or PRUNED
    cell: str
    arm: str
    backbone: str
    seed: int
    arm_params: Mapping[str, Any]
    value: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    fail_reason: str | None = None

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE"


def cell_attrs(cell: str, arm: str, backbone: str, seed: int, arm_params: Mapping[str, Any]) -> dict:
    """The user attributes that identify a trial's cell."""
    return {"cell": cell, "arm": arm, "backbone": backbone, "seed": int(seed), "arm_params": dict(arm_params)}


def to_record(trial: optuna.trial.FrozenTrial) -> TrialRecord | None:
    """A stored trial as a ``TrialRecord``; None for trials that ecasweep did not write and for
    duplicates that stood down without running."""
    attrs = trial.user_attrs
    if "cell" not in attrs or DUPLICATE_OF in attrs:
        return None
    metrics = {k: v for k, v in attrs.items() if k not in CELL_ATTRS and k != FAIL_REASON}
    return TrialRecord(number=trial.number, state=trial.state.name, cell=attrs["cell"], arm=attrs["arm"],
                       backbone=attrs["backbone"], seed=int(attrs["seed"]), arm_params=attrs.get("arm_params", {}),
                       value=trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
                       metrics=metrics, fail_reason=attrs.get(FAIL_REASON))


def read_records(study: optuna.Study) -> list[TrialRecord]:
    """Every ecasweep trial of ``study``, in trial-number order."""
    records = (to_record(t) for t in study.get_trials(deepcopy=False))
    return [r for r in records if r is not None]


def latest_by_cell(records: list[TrialRecord]) -> dict[str, TrialRecord]:
    """The trial that counts for each cell: its COMPLETE trial if any, else the most recent one."""
    best: dict[str, TrialRecord] = {}
    for r in records:
        current = best.get(r.cell)
        if current is None or not current.complete:
            best[r.cell] = r
    return best
