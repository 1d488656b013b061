"""Is a running trial's worker alive? Heartbeats, their age, and stale trials.

Every claimed trial is finished, visibly running (its heartbeat is fresh), or recoverable: once its
heartbeat is older than the grace period it is *stale*, failed here, and the sweep enqueues its
cell again (the next trial resumes from the cell's checkpoint).

- RDB storages (SQLite, PostgreSQL, MySQL) use Optuna's own heartbeat table, timed by the database's
  clock, so workers on machines whose clocks differ agree on a heartbeat's age.
- Other storages (Optuna's journal file) have no heartbeat table: the heartbeat is then the trial's
  system attribute ``ecasweep:heartbeat`` (Unix time of the worker's clock).
- A worker records the first heartbeat *before* it moves the trial to RUNNING, so a worker killed
  between the two steps leaves a trial that turns stale like any other. A RUNNING trial with no
  heartbeat at all (written by an older ecasweep, or by another program) is judged by the time it
  started. Optuna's ``fail_stale_trials`` skips such trials, which is why ecasweep judges staleness
  itself.
- Whatever the clocks say, a trial whose heartbeat this process has watched stand still for longer
  than the grace period is stale too (``StaleWatch``): a clock far off on some worker can delay a
  verdict but never make a wait endless.

Example:
    >>> grace_seconds() >= heartbeat_interval()
    True
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from .storage import GRACE_FACTOR, heartbeat_interval, rdb_engine

#: the heartbeat of a trial in storages without Optuna's heartbeat table (Unix time)
BEAT_ATTR = "ecasweep:heartbeat"


def grace_seconds() -> float:
    """How long a heartbeat may be silent before its trial is stale."""
    return float(GRACE_FACTOR * heartbeat_interval())


def _optuna_heartbeat(storage: BaseStorage) -> bool:
    """Whether heartbeats go to Optuna's table (any RDB storage, whatever interval it was opened with)."""
    return rdb_engine(storage) is not None


def beat(storage: BaseStorage, trial_id: int) -> None:
    """Record that the worker of ``trial_id`` is alive (also before the trial is claimed)."""
    if _optuna_heartbeat(storage):
        storage.record_heartbeat(trial_id)
    else:
        storage.set_trial_system_attr(trial_id, BEAT_ATTR, time.time())


@dataclass(frozen=True)
class RunningTrial:
    """A RUNNING trial as a waiting worker sees it."""

    trial_id: int
    number: int
    cell: str
    worker: str
    #: seconds since its last heartbeat; None if it never beat (then ``started_ago`` counts)
    beat_age: float | None
    started_ago: float
    #: the stored heartbeat (a timestamp), to see whether it moves
    beat_mark: object = None

    @property
    def silent_for(self) -> float:
        """Seconds since the last sign of life by the clocks: the heartbeat, else the start."""
        return self.beat_age if self.beat_age is not None else self.started_ago

    def describe(self, grace: float) -> str:
        beat = f"last heartbeat {self.beat_age:.0f} s ago" if self.beat_age is not None else \
            f"no heartbeat yet, started {self.started_ago:.0f} s ago"
        return f"{self.cell or f'trial {self.number}'} on {self.worker or 'an unknown worker'} ({beat}; " \
               f"stale after {grace:.0f} s)"


def running(study: optuna.Study) -> list[RunningTrial]:
    """The study's RUNNING trials with the age of their heartbeats."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not trials:
        return []
    storage = study._storage
    now_local = dt.datetime.now()  # Optuna stamps datetime_start with the worker's local clock
    if _optuna_heartbeat(storage):
        beats, now = _rdb_heartbeats(storage, [t._trial_id for t in trials])
        ages = {tid: (now - at).total_seconds() for tid, at in beats.items()}
    else:
        now_unix = time.time()
        beats = {t._trial_id: t.system_attrs[BEAT_ATTR] for t in trials if BEAT_ATTR in t.system_attrs}
        ages = {tid: now_unix - float(at) for tid, at in beats.items()}
    return [RunningTrial(t._trial_id, t.number, str(t.user_attrs.get("cell", "")), str(t.user_attrs.get("worker", "")),
                         ages.get(t._trial_id),
                         (now_local - t.datetime_start).total_seconds() if t.datetime_start else 0.0,
                         beats.get(t._trial_id))
            for t in trials]


def _rdb_heartbeats(storage, trial_ids: list[int]) -> tuple[dict[int, dt.datetime], dt.datetime]:
    """Last heartbeat per trial and the database's current time, both naive, from Optuna's table.

    Optuna reads this table only to list stale trials, and skips trials with no row; the model is
    internal to Optuna, so this is the one place that touches it.
    """
    import sqlalchemy
    from optuna.storages._rdb import models

    table = models.TrialHeartbeatModel
    with rdb_engine(storage).connect() as conn:
        now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        rows = conn.execute(sqlalchemy.select(table.trial_id, table.heartbeat)
                            .where(table.trial_id.in_(trial_ids))).all()
    if isinstance(now, str):  # SQLite's CURRENT_TIMESTAMP is text
        now = dt.datetime.fromisoformat(now)
    return {tid: at.replace(tzinfo=None) for tid, at in rows}, now.replace(tzinfo=None)


class StaleWatch:
    """Judges RUNNING trials stale: silent past the grace period by the clocks, or seen standing
    still (same heartbeat, or none) by this process for that long."""

    def __init__(self, grace: float | None = None) -> None:
        self.grace = grace_seconds() if grace is None else grace
        self._seen: dict[int, tuple[object, float]] = {}

    def stale(self, trials: list[RunningTrial]) -> list[RunningTrial]:
        now = time.monotonic()
        out = []
        for t in trials:
            mark, since = self._seen.get(t.trial_id, (None, None))
            if since is None or mark != t.beat_mark:
                self._seen[t.trial_id] = (t.beat_mark, now)
                since = now
            if t.silent_for > self.grace or now - since > self.grace:
                out.append(t)
        return out


def fail_stale(study: optuna.Study, watch: StaleWatch | None = None) -> list[RunningTrial]:
    """Fail the study's stale RUNNING trials; returns those this call failed."""
    watch = watch or StaleWatch()
    failed = []
    for t in watch.stale(running(study)):
        try:
            if study._storage.set_trial_state_values(t.trial_id, state=TrialState.FAIL):
                failed.append(t)
        except UpdateFinishedTrialError:  # finished meanwhile, or failed by another worker
            pass
    return failed
