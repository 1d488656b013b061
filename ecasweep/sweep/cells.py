"""Cells -> trials: which cells need a trial, enqueuing them, and claiming one exactly once.

``ensure_cells`` enqueues one WAITING trial for every cell that has no COMPLETE, RUNNING or WAITING
trial (its factors as the trial's parameters, ``store.params``); ``claim`` moves one WAITING trial
to RUNNING with the storage's ``set_trial_state_values``, which succeeds for exactly one caller.
The module docstring of ``sweep.worker`` tells the whole protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from ..engine import faults
from ..spec import Cell, StudySpec
from ..store import liveness
from ..store.locking import study_lock
from ..store.params import cell_trial
from ..store.results import DUPLICATE_OF, FAIL_REASON, TrialRecord, latest_by_cell, read_records
from . import signals

INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class CellStatus:
    """Where one cell stands: done, running, waiting, failed or todo."""

    cell: Cell
    state: str
    record: TrialRecord | None = None

    @property
    def reason(self) -> str | None:
        if self.state != "failed" or self.record is None:
            return None
        return self.record.fail_reason or "stale: its worker stopped without a word"


_STATE_NAMES = {"COMPLETE": "done", "RUNNING": "running", "WAITING": "waiting", "FAIL": "failed", "PRUNED": "done"}


def cell_statuses(study: optuna.Study, spec: StudySpec) -> list[CellStatus]:
    """The state of every planned cell, from the trials in the study."""
    latest = latest_by_cell(read_records(study))
    statuses = []
    for cell in spec.cells():
        record = latest.get(cell.key)
        statuses.append(CellStatus(cell, _STATE_NAMES[record.state] if record else "todo", record))
    return statuses


def ensure_cells(study: optuna.Study, spec: StudySpec, retry_failed: bool,
                 watch: liveness.StaleWatch | None = None) -> int:
    """Enqueue a WAITING trial for each cell that needs one; returns how many were enqueued.

    Stale trials are failed first (``liveness``). Cells whose worker died (stale) or was
    interrupted are always enqueued again; cells that failed with an error only when
    ``retry_failed`` (at the start of a run), so a failing cell does not loop within one run. One
    process at a time enqueues (``locking.study_lock``), so no cell gets two trials.
    """
    liveness.fail_stale(study, watch)
    with study_lock(study):
        return _enqueue_missing(study, spec, retry_failed)


def _enqueue_missing(study: optuna.Study, spec: StudySpec, retry_failed: bool) -> int:
    enqueued = 0
    # Longest first (deeper backbones), so that parallel workers do not end on one long straggler.
    for status in sorted(cell_statuses(study, spec), key=lambda s: -_depth(s.cell.backbone)):
        retry = status.state == "failed" and (retry_failed or status.record.fail_reason in (None, INTERRUPTED))
        if status.state == "todo" or retry:
            cell = status.cell
            study.add_trial(cell_trial(spec, cell))  # enqueued, its factors as parameters (params.py)
            enqueued += 1
    return enqueued


def _depth(backbone: str) -> int:
    digits = "".join(c for c in backbone.rsplit("-", 1)[-1] if c.isdigit())
    return int(digits) if digits else 0


def claim(study: optuna.Study) -> optuna.trial.Trial | None:
    """Take one WAITING trial for this worker, or None when there is none left.

    The first heartbeat is recorded before the trial moves to RUNNING, so that a worker killed
    between the two steps leaves a trial that turns stale (``liveness``), never one that stays
    RUNNING forever. Moving WAITING to RUNNING succeeds for exactly one caller.
    """
    storage = study._storage
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            liveness.beat(storage, frozen._trial_id)
            if not storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        trial = optuna.trial.Trial(study, frozen._trial_id)
        try:
            with signals.stops_as_interruptions():
                if faults.armed("claimed"):
                    faults.kill()
                cell = frozen.user_attrs.get("cell")
                rivals = [t.number for t in study.get_trials(deepcopy=False,
                                                             states=(TrialState.RUNNING, TrialState.COMPLETE))
                          if t.user_attrs.get("cell") == cell and t.number != frozen.number
                          and DUPLICATE_OF not in t.user_attrs]
                if rivals:
                    storage.set_trial_user_attr(frozen._trial_id, DUPLICATE_OF, min(rivals))
                    storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
                    continue
        except KeyboardInterrupt:  # a stop right after the claim: resumable at once, not stale later
            _finish_failed(study, trial, INTERRUPTED)
            raise
        return trial
    return None


def _finish_failed(study: optuna.Study, trial: optuna.trial.Trial, reason: str) -> None:
    try:
        trial.set_user_attr(FAIL_REASON, reason[:500])
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    except UpdateFinishedTrialError:  # finished meanwhile (stored, or marked stale by another worker)
        pass
